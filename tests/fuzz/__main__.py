"""`python -m tests.fuzz --seconds 600`: fuzz every target for that long (see tests/fuzz)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.fuzz import Stats, Target, fuzz, fuzz_targets


def report(stats: Stats, targets: list[Target]) -> None:
    rate = stats.inputs / stats.seconds if stats.seconds else 0.0
    per_target = ", ".join(f"{t.name} {t.inputs:,} ({t.accepted:,} ok)" for t in targets)
    print(
        f"[{stats.seconds:7.1f} s] {stats.inputs:,} inputs ({rate:,.0f}/s), "
        f"{len(stats.crashes)} crashes | {per_target}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out", type=Path, default=Path("fuzz-crashes"), help="where crashing inputs go"
    )
    parser.add_argument("--target", action="append", help="only these targets (repeatable)")
    args = parser.parse_args()
    with fuzz_targets() as targets:
        if args.target:
            unknown = set(args.target) - {t.name for t in targets}
            if unknown:
                parser.error(f"unknown target(s) {sorted(unknown)}: {[t.name for t in targets]}")
            targets = [t for t in targets if t.name in args.target]
        print(f"fuzzing {len(targets)} targets for {args.seconds:g} s (seed {args.seed})")
        stats = fuzz(
            targets, seed=args.seed, seconds=args.seconds, out_dir=args.out, progress=report
        )
        report(stats, targets)
    for crash in stats.crashes:
        print(f"CRASH {crash.target}: {crash.error}")
    if stats.crashes:
        print(f"{len(stats.crashes)} crashing inputs saved under {args.out}/")
        return 1
    print("no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
