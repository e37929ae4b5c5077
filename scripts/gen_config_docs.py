"""Regenerate the key table of docs/configuration.md from the settings models."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import ENV_PREFIX, describe

HEAD = """# Configuration

citygate reads one TOML file and then environment variables
named `CITYGATE_<SECTION>__<KEY>` (for example `CITYGATE_MQTT__PORT=8883`), which override the
file. Values in the environment are read as TOML literals (`true`, `42`, `"text"`); a bare word
is taken as a string. Everything is validated at start: an unknown key, a wrong type or an
impossible combination stops the gateway with a message naming the key.
`citygate config check FILE` runs the same validation without starting anything, and
`citygate config keys` prints this table.

Secrets (`[mqtt] password`) are accepted from the environment only; a config file that
contains one is refused, so files can be shared and committed without leaking credentials.
Secrets never appear in logs or API output.

## Which file: the search order

Every command (`citygate run` and every CLI command alike) uses the first of:

1. `--config FILE` (a file named here must exist: a typo is an error, not a fall-through);
2. `$CITYGATE_CONFIG` (likewise);
3. `./citygate.toml` in the working directory;
4. `./.demo/citygate.toml`, the file `citygate demo` writes when it starts (database, spool,
   the API, OCPP and broker ports it actually bound; never a secret), so that
   `.venv/bin/citygate token create --role inspector` run beside a running demo makes a token
   that demo accepts at once, and `telemetry status`, `chargers health` and `cases list` read
   the demo's state.

Each command says on stderr which file it uses (`citygate: config /abs/path (from
./citygate.toml)`, or `no config file (searched ...)`); stdout stays clean for tokens and
`--json`. `citygate config which` prints the file alone on stdout (exit 1 when there is none).
`citygate demo` itself reads only a file given with `--config` (never a deployment's
`./citygate.toml` or `$CITYGATE_CONFIG`, nor the file it writes); it keeps its data in
`--workdir` (default `.demo`) and refuses, in one line, to start a second demo on the same
workdir.

Relative paths in a file (`[town] file`, `[telemetry] spool_dir`, TLS files, the SQLite file in
`[database] url`, ...) are relative to the **file's directory**, so a file means the same from
any working directory; paths from the environment are relative to the working directory.

With no file at all the gateway runs on embedded defaults: SQLite in `./citygate.db`, a broker
on 127.0.0.1:1883, the shipped sample town, the API on 127.0.0.1:8080. `citygate run` then
prints a warning block on stderr naming what it will use (sample town, broker host:port, the
absolute paths of the database and the spool) and runs: it does not refuse, because nothing
existing is overwritten (the sample town is imported only into an empty database) and a first
try wants defaults. For a deployment, write a file and pass `--config`.

## Keys

TLS is configured per transport (`[mqtt] tls`, `ca_file`, `cert_file`, `key_file`;
`[api] tls_cert`, `tls_key`). When TLS is configured and fails, the connection fails; it is
never retried in plaintext.

| section | key | default | environment variable | meaning |
|---|---|---|---|---|
"""


def render() -> str:
    rows = [
        f"| `[{s}]` | `{k}` | `{d}` | `{ENV_PREFIX}{s.upper()}__{k.upper()}` | {doc} |"
        for s, k, d, doc in describe()
    ]
    return HEAD + "\n".join(rows) + "\n"


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    out.write_text(render(), "utf-8")
    print(f"wrote {out}")
