#!/usr/bin/env bash
# Install and start what the test suite needs on a Debian machine:
#   - mosquitto (the tests start private instances on free loopback ports)
#   - socat (virtual serial pairs for the Modbus RTU tests)
#   - sip-tester (SIPp, the GB/T 28181 body cam in the SIP tests)
#   - chromium and a CJK font (the web page's browser tests drive Debian's chromium through
#     Playwright; Playwright's own browser download is not used)
#   - wrk (the load of bench/bench_vacancy.py)
#   - a PostgreSQL server with trust auth: the machine's on 127.0.0.1:5432 if it lets user
#     postgres in without a password, else a private cluster on a free port (the tests create
#     throwaway databases).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-test-deps: need root (or sudo) to install Debian packages" >&2; fi
fi

apt_updated=0
need() {  # need PACKAGE...
  if [ $apt_updated -eq 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)  # InfluxDB v2 write API
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)                   # InfluxDB 1.x
command -v socat >/dev/null 2>&1 || missing+=(socat)                      # virtual serial pairs (Modbus RTU tests)
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)                  # SIPp: the body cams' SIP device in tests
[ -x /usr/bin/chromium ] || missing+=(chromium)                           # the web page's browser tests
command -v wrk >/dev/null 2>&1 || missing+=(wrk)                          # HTTP load (bench_vacancy)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 \
  || missing+=(fonts-noto-cjk)                                            # Chinese glyphs in those tests
if [ ${#missing[@]} -gt 0 ]; then echo "installing ${missing[*]}"; need "${missing[@]}"; fi

# PostgreSQL: the machine's server on 127.0.0.1:5432 when it trusts local TCP connections;
# otherwise (none, or Debian's default that wants a password) a private trust cluster of our own
# on a free port, which tests/conftest.py finds (scripts/pg-test-server.sh). The machine's
# server and its pg_hba.conf are left as they are.
if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
  echo "installing postgresql-client"; need postgresql-client
fi
if [ "$(scripts/pg-test-server.sh probe 127.0.0.1 5432)" != "trust" ] \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql"; need postgresql
fi
pg=$(scripts/pg-test-server.sh ensure)
echo "test dependencies ready: mosquitto, victoria-metrics, influxd, socat, sipp, chromium, wrk; $pg"
