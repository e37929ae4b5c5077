#!/usr/bin/env bash
# Install and start what the test suite needs on a Debian machine:
#   - mosquitto (the tests start private instances on free loopback ports)
#   - a PostgreSQL server on 127.0.0.1:5432 with trust auth for local connections
#     (used as is when one already runs; the tests create throwaway databases).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-test-deps: need root (or sudo) to install Debian packages" >&2; fi
fi

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

apt_updated=0
need() {  # need PACKAGE...
  if [ $apt_updated -eq 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)  # InfluxDB v2 write API
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)                   # InfluxDB 1.x
if [ ${#missing[@]} -gt 0 ]; then echo "installing ${missing[*]}"; need "${missing[@]}"; fi

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_isready >/dev/null 2>&1; then
  echo "installing postgresql"; need postgresql postgresql-client
fi
if ! pg_ready; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql"; need postgresql
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    conf="/etc/postgresql/$ver/main/pg_hba.conf"
    # Local test server: trust on loopback (this is a throwaway CI/dev machine's server).
    if [ -f "$conf" ] && ! grep -q "citygate-test" "$conf"; then
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # citygate-test\nlocal all all trust # citygate-test' "$conf"
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  else
    # No cluster: make one as the postgres user (initdb refuses root).
    bindir=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
    data=/var/lib/postgresql/citygate-test
    if [ ! -d "$data" ]; then
      $SUDO install -d -o postgres -g postgres "$data"
      as_postgres "$bindir/initdb" -D "$data" -A trust -U postgres >/dev/null
    fi
    $SUDO install -d -o postgres -g postgres /var/run/postgresql
    as_postgres "$bindir/pg_ctl" -D "$data" -o "-c listen_addresses=127.0.0.1 -p 5432" \
      -l "$data/server.log" -w start >/dev/null
  fi
  for _ in $(seq 1 100); do pg_ready && break; sleep 0.1; done
  pg_ready || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi
echo "test dependencies ready: mosquitto, victoria-metrics, influxd, PostgreSQL on 127.0.0.1:5432"
