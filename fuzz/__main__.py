"""``python -m fuzz``: run fuzz targets, one JSON line per target.

Exit 0 only when no target crashed and each ran at least ``--examples`` inputs; on a crash the
minimal input and its traceback are in the target's line (and on stderr), and the run exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from fuzz.core import run_target
from fuzz.registry import TARGETS


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    ap.add_argument("--examples", type=int, default=100_000, help="inputs per target")
    ap.add_argument(
        "--target", action="append", default=[], metavar="NAME",
        help="a target's name or a prefix of names (repeatable; default: all)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (reproduce a run)")
    ap.add_argument("--json", action="store_true", help="only the JSON lines, no summary")
    ap.add_argument("--list", action="store_true", help="list the targets and their entry points")
    args = ap.parse_args(argv)
    if args.list:
        for target in TARGETS.values():
            print(f"{target.name:24} {target.entry}")
        return 0
    logging.disable(logging.CRITICAL)  # the links log each first rejection: not the output here
    names = list(TARGETS)
    if args.target:
        names = [n for n in names if any(n == t or n.startswith(t + ".") for t in args.target)]
        unknown = [
            t for t in args.target if not any(n == t or n.startswith(t + ".") for n in TARGETS)
        ]
        if unknown:
            ap.error(f"unknown target(s): {', '.join(unknown)} (see --list)")
    failed: list[str] = []
    short: list[str] = []
    total = 0
    for name in names:
        result = run_target(TARGETS[name], args.examples, seed_value=args.seed)
        line = result.as_dict()
        if args.seed is not None:
            line["seed"] = args.seed
        print(json.dumps(line, ensure_ascii=False), flush=True)
        total += result.inputs
        if result.crashes:
            failed.append(name)
            print(f"CRASH in {name}; minimal input:\n{result.crash_input}\n{result.crash_error}",
                  file=sys.stderr)  # fmt: skip
        elif result.inputs < args.examples:
            short.append(f"{name} ({result.inputs})")
    if not args.json:
        print(
            f"fuzz: {len(names)} targets, {total} inputs, crashed: {', '.join(failed) or 'none'}"
            f"{'; short of --examples: ' + ', '.join(short) if short else ''}",
            file=sys.stderr,
        )
    return 1 if failed or short else 0


if __name__ == "__main__":
    sys.exit(main())
