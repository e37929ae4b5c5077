"""``citygate import FILE``: the bulk import of sensors, plate cameras, chargers and body
cams from CSV or TOML (gateway.directory.bulk), the same function as ``POST
/api/v1/import``. Exit 0 imported (or a clean dry run), 1 rows rejected (nothing imported),
2 usage, 5 database unavailable (docs/cli.md). A progress bar on a terminal, plain progress
lines otherwise, on stderr; the summary (or with ``--json`` the document the API answers) on
stdout, generated secrets last, once."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from events import now_utc
from gateway.cli.common import Exit, WithConfig, cli_actor, fail, settings_for, with_db

LIST_AT_MOST = 20  # ids listed per kind and outcome in the text summary (--json has all)


class ProgressOut:
    """A bar redrawn in place on a terminal; a plain line every tenth (and at the end)
    elsewhere, so logs of a scripted import stay short."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._last_tenth = -1
        self._drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self.tty:
            now = time.monotonic()
            if done < total and now - self._drawn < 0.05:
                return
            self._drawn = now
            width = 30
            filled = width * done // total
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\rwriting [{bar}] {done}/{total}{end}")
        else:
            tenth = 10 * done // total
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(f"writing: {done}/{total} rows ({10 * tenth}%)\n")
        self.stream.flush()


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The text summary of an import document (what --json prints, for people)."""
    written = not doc["errors"] and not doc["dry_run"]
    if doc["errors"]:  # the rows that were read well, then what the file would have done
        head = f"{len(doc['errors'])} error(s): nothing imported ({doc['rows']} rows read well)"
    elif doc["dry_run"]:
        head = f"dry run: nothing written ({doc['rows']} rows)"
    else:
        head = f"imported ({doc['rows']} rows)"
    lines = [head]
    for e in doc["errors"]:
        lines.append(f"  error: {e['row']}: {e['field']}: {e['message']}")
    for kind, counts in doc["summary"].items():
        verbs = ("added", "changed", "retired") if written else ("to add", "to change", "to retire")
        lines.append(
            f"{kind}: {counts['added']} {verbs[0]}, {counts['changed']} {verbs[1]}, "
            f"{counts['retired']} {verbs[2]}, {counts['unchanged']} unchanged"
        )
        for key in doc["added"].get(kind, [])[:LIST_AT_MOST]:
            lines.append(f"  + {key}")
        more = len(doc["added"].get(kind, [])) - LIST_AT_MOST
        if more > 0:
            lines.append(f"  + ... and {more} more")
        for change in doc["changed"].get(kind, []):
            fields = ", ".join(f"{f}: {b!r} -> {a!r}" for f, (b, a) in change["fields"].items())
            lines.append(f"  ~ {change['id']}: {fields}")
        for key in doc["retired"].get(kind, []):
            lines.append(f"  - {key}")
    lines.extend(f"note: {n}" for n in doc["notes"])
    if doc["secrets"]:
        lines.append("generated secrets (shown this once; only their hashes are stored):")
        for s in doc["secrets"]:
            shown = {k: v for k, v in s.items() if k not in ("kind", "id")}
            lines.append(
                f"  {s['kind']} {s['id']}: " + " ".join(f"{k}={v}" for k, v in shown.items())
            )
    return lines


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.directory.bulk.parse import ImportFileError, detect_format
    from gateway.directory.bulk.service import import_file, limits_of

    path: Path = args.file
    try:
        fmt = args.format or detect_format(path.name)
    except ImportFileError as exc:
        return fail(args, Exit.USAGE, f"import: {exc}", "give --format csv|toml")
    settings = settings_for(args)
    limits = limits_of(settings.bulk_import.max_file_bytes, settings.bulk_import.max_rows)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return fail(args, Exit.FAILED,
                        f"import: {path}: {size} bytes, more than {limits.max_bytes}",
                        "split the file, or raise [bulk_import] max_file_bytes",
                        "too_large")  # fmt: skip
        data = path.read_bytes()
    except OSError as exc:
        return fail(args, Exit.USAGE, f"import: {path}: {exc.strerror or exc}",
                    "give a file that exists and can be read", "unreadable")  # fmt: skip
    progress = ProgressOut(sys.stderr)

    async def work(sessions: Any) -> int:
        try:
            outcome = await import_file(
                sessions,
                data,
                fmt,
                now_utc(),
                limits=limits,
                realm=settings.bodycams.effective_realm,
                kind=args.kind,
                dry_run=args.dry_run,
                retire_missing=args.retire_missing,
                progress=progress,
                actor=cli_actor(args),
            )
        except ImportFileError as exc:
            return fail(args, Exit.FAILED, f"import: {path}: {exc}",
                        "fix the file and import again (nothing was imported)",
                        "refused")  # fmt: skip
        doc = outcome.as_dict()
        if args.json:
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        else:
            print("\n".join(summary_lines(doc)))
        return int(Exit.FAILED if doc["errors"] else Exit.OK)

    return asyncio.run(with_db(settings, work, town=True))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add ``citygate import`` to the parser."""
    p = with_config(
        sub.add_parser(
            "import",
            help="bulk import of sensors, cameras, chargers, body cams (CSV or TOML)",
            description="All or nothing: one rejected row and nothing is imported. "
            "Exit 0 imported, 1 rows rejected, 2 usage.",
        )
    )
    p.add_argument("file", type=Path, help="a .csv (header row) or .toml ([[sensors]], ...)")
    p.add_argument(
        "--kind",
        choices=["sensor", "camera", "charger", "bodycam"],
        default=None,
        help="what a CSV holds (else a kind column); with TOML: import only this kind",
    )
    p.add_argument("--format", choices=["csv", "toml"], default=None, help="default: by name")
    p.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    p.add_argument(
        "--retire-missing",
        action="store_true",
        help="retire devices of the file's kinds that the file does not name",
    )
    p.add_argument("--json", action="store_true", help="the API's JSON document")
    p.set_defaults(func=cmd_import)
