#!/usr/bin/env bash
# The PostgreSQL server the tests use, and how it is found.
#
#   pg-test-server.sh probe HOST PORT   -> prints trust | password | none (exit 0)
#       trust:    a server answers and lets user postgres in without a password
#       password: a server answers but wants a password (Debian's default for TCP) or refuses
#       none:     nothing answers
#   pg-test-server.sh ensure            -> a trust server for the tests: the machine's on
#       127.0.0.1:5432 when it lets us in; otherwise a private cluster of our own (initdb as
#       the postgres user, trust auth, a free port on 127.0.0.1, data under $PG_TEST_DIR).
#       Writes the port to $PG_TEST_DIR/port for tests/conftest.py (removed when 5432 is used).
#       The machine's own server and its pg_hba.conf are never changed.
#   pg-test-server.sh stop              -> stop the private cluster and remove its directory.
set -euo pipefail

PG_TEST_DIR=${CITYGATE_TEST_PG_DIR:-/tmp/citygate-test-pg}
PORT_FILE="$PG_TEST_DIR/port"
MACHINE_PORT=${CITYGATE_TEST_PG_MACHINE_PORT:-5432}  # the machine's server (a test moves it)

probe() {  # probe HOST PORT
  local host=$1 port=$2 out
  if ! pg_isready -q -h "$host" -p "$port" -t 3 2>/dev/null; then
    # pg_isready says "no response" for nothing listening, and also for a server that answers
    # but rejects the startup: only a refused TCP connection means none.
    if ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then echo none; return; fi
  fi
  if out=$(PGCONNECT_TIMEOUT=5 psql -h "$host" -p "$port" -U postgres -d postgres -w -Atqc 'select 1' 2>&1) \
      && [ "$out" = "1" ]; then
    echo trust
  else
    echo password
  fi
}

bindir() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$initdb" ] || initdb=$(command -v initdb || true)
  [ -n "$initdb" ] || { echo "pg-test-server: initdb not found (install postgresql)" >&2; exit 1; }
  dirname "$(readlink -f "$initdb")"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_owner() {  # the cluster's owner: postgres when we are root (initdb refuses root), else us
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure() {
  if [ "$(probe 127.0.0.1 "$MACHINE_PORT")" = "trust" ]; then
    rm -f "$PORT_FILE"
    echo "PostgreSQL: the machine's server on 127.0.0.1:$MACHINE_PORT (trust)"
    return
  fi
  if [ -f "$PORT_FILE" ] && [ "$(probe 127.0.0.1 "$(cat "$PORT_FILE")")" = "trust" ]; then
    echo "PostgreSQL: private test cluster on 127.0.0.1:$(cat "$PORT_FILE") ($PG_TEST_DIR)"
    return
  fi
  local bin data port
  bin=$(bindir)
  data="$PG_TEST_DIR/data"
  mkdir -p "$PG_TEST_DIR"
  chmod 755 "$PG_TEST_DIR"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
    chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  port=$(free_port)
  as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data -c fsync=off" \
    start >/dev/null
  for _ in $(seq 1 100); do [ "$(probe 127.0.0.1 "$port")" = "trust" ] && break; sleep 0.1; done
  [ "$(probe 127.0.0.1 "$port")" = "trust" ] \
    || { echo "pg-test-server: private cluster did not come up (see $data/server.log)" >&2; exit 1; }
  echo "$port" >"$PORT_FILE"
  echo "PostgreSQL: 127.0.0.1:$MACHINE_PORT is not ours to use without a password;" \
    "private test cluster on 127.0.0.1:$port ($PG_TEST_DIR)"
}

stop() {
  if [ -f "$PG_TEST_DIR/data/PG_VERSION" ]; then
    as_owner "$(bindir)/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_TEST_DIR"
}

case "${1:-}" in
  probe) probe "$2" "$3" ;;
  ensure) ensure ;;
  stop) stop ;;
  *) echo "usage: $0 probe HOST PORT | ensure | stop" >&2; exit 2 ;;
esac
