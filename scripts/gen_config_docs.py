"""Regenerate the key table of docs/configuration.md from the settings models."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import ENV_PREFIX, describe

HEAD = """# Configuration

citygate reads one TOML file (`citygate run --config FILE`) and then environment variables
named `CITYGATE_<SECTION>__<KEY>` (for example `CITYGATE_MQTT__PORT=8883`), which override the
file. Values in the environment are read as TOML literals (`true`, `42`, `"text"`); a bare word
is taken as a string. Everything is validated at start: an unknown key, a wrong type or an
impossible combination stops the gateway with a message naming the key.
`citygate config check FILE` runs the same validation without starting anything, and
`citygate config keys` prints this table.

Secrets (`[mqtt] password`) are accepted from the environment only; a config file that
contains one is refused, so files can be shared and committed without leaking credentials.
Secrets never appear in logs or API output.

With no file at all the gateway runs on embedded defaults: SQLite in `./citygate.db`, a broker
on 127.0.0.1:1883, the shipped sample town, the API on 127.0.0.1:8080.

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
