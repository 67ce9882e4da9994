"""Installed builds of jax_fa3 timed against each other: each round runs
bench/profile_seeds.py --times once per build, in alternating processes, and
the table lists every round's kernel-time sum per case.

    python3 bench/ab.py --builds main=/tmp/ab_main epi=/tmp/ab_epi [--rounds 3] [--cases seed1 seed2 ...]

(each DIR is a pip --target directory; tools/ab_session.sh makes them.)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LINE = re.compile(r"^(\w+): total ([0-9.]+) µs")


def run_build(target: str, cases: list[str]) -> dict[str, float]:
    """{case: µs} from one profile_seeds.py process importing jax_fa3 from target."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (target, env.get("PYTHONPATH", "")) if p)
    check = subprocess.run([sys.executable, "-c", "import jax_fa3; print(jax_fa3.__file__)"],
                           env=env, capture_output=True, text=True, check=True, cwd=BENCH)
    if not check.stdout.startswith(target):
        raise RuntimeError(f"jax_fa3 resolved to {check.stdout.strip()}, not under {target}")
    run = subprocess.run([sys.executable, "profile_seeds.py", "--times", "--cases", *cases],
                         env=env, capture_output=True, text=True, cwd=BENCH)
    if run.returncode != 0:
        raise RuntimeError(f"profile_seeds.py with {target} failed:\n{run.stderr[-2000:]}")
    return {m.group(1): float(m.group(2)) for m in map(LINE.match, run.stdout.splitlines()) if m}


def parse_build(spec: str) -> tuple[str, str]:
    name, sep, target = spec.partition("=")
    if not sep or not name or not target:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {spec!r}")
    return name, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--builds", nargs="+", type=parse_build, required=True, metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["seed1", "seed1_f16", "seed2", "s512", "s512_causal"])
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in args.builds}
    for _ in range(args.rounds):
        for name, target in args.builds:
            runs[name].append(run_build(target, args.cases))
            print(f"round {len(runs[name])} {name}: {runs[name][-1]}", flush=True)
    names = [name for name, _ in args.builds]
    print("| case | " + " | ".join(f"{n} (µs, each round)" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for case in args.cases:
        cells = [" / ".join(f"{r.get(case, float('nan')):.1f}" for r in runs[n]) for n in names]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
