"""``python -m fuzz``: run fuzz targets, one JSON line per target.

Exit 0 only when no target crashed and each ran at least ``--examples`` inputs; on a crash the
minimal input and its traceback are in the target's line (and on stderr), and the run exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from fuzz.core import Result, run_target
from fuzz.registry import TARGETS


def _run(name: str, examples: int, seed: int | None) -> Result:
    logging.disable(logging.CRITICAL)  # the links log each first rejection: not the output here
    return run_target(TARGETS[name], examples, seed_value=seed)


def _results(names: list[str], examples: int, seed: int | None, jobs: int) -> Iterator[Result]:
    """Each target's result, in the order of *names* with one job, as they end with more."""
    if jobs == 1:
        for name in names:
            yield _run(name, examples, seed)
        return
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(_run, name, examples, seed) for name in names]
        for future in as_completed(futures):
            yield future.result()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    ap.add_argument("--examples", type=int, default=100_000, help="inputs per target")
    ap.add_argument(
        "--target", action="append", default=[], metavar="NAME",
        help="a target's name or a prefix of names (repeatable; default: all)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (reproduce a run)")
    ap.add_argument(
        "--jobs", type=int, default=1, help="targets run side by side in this many processes"
    )
    ap.add_argument("--json", action="store_true", help="only the JSON lines, no summary")
    ap.add_argument("--list", action="store_true", help="list the targets and their entry points")
    args = ap.parse_args(argv)
    if args.list:
        for target in TARGETS.values():
            print(f"{target.name:24} {target.entry}")
        return 0
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
    for result in _results(names, args.examples, args.seed, max(1, args.jobs)):
        line = result.as_dict()
        if args.seed is not None:
            line["seed"] = args.seed
        print(json.dumps(line, ensure_ascii=False), flush=True)
        total += result.inputs
        if result.crashes:
            failed.append(result.name)
            print(
                f"CRASH in {result.name}; minimal input:\n{result.crash_input}\n"
                f"{result.crash_error}",
                file=sys.stderr,
            )
        elif result.inputs < args.examples:
            short.append(f"{result.name} ({result.inputs})")
    if not args.json:
        print(
            f"fuzz: {len(names)} targets, {total} inputs, crashed: {', '.join(failed) or 'none'}"
            f"{'; short of --examples: ' + ', '.join(short) if short else ''}",
            file=sys.stderr,
        )
    return 1 if failed or short else 0


if __name__ == "__main__":
    sys.exit(main())
