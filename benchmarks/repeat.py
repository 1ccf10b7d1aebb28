"""Run a benchmark script several times and print the median of each headline figure.

    python benchmarks/repeat.py --runs 10 proxy.py --seconds 5
    python benchmarks/repeat.py --runs 10 vs_ace.py --saves 20

These machines are shared and noisy: one run's figure can move by a third. Each script already
measures its anchor in the same run (ratios cancel most of the noise); this takes the median of
those ratios over runs, with the range, from the ``summary:`` line every script prints last.
A run that fails is reported and left out; its output is shown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import SUMMARY_PREFIX

HERE = Path(__file__).resolve().parent


def summary_of(output: str) -> dict[str, float | None] | None:
    for line in reversed(output.splitlines()):
        if line.startswith(SUMMARY_PREFIX):
            figures: dict[str, float | None] = json.loads(line[len(SUMMARY_PREFIX) :])
            return figures
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("script", help="a script in benchmarks/, e.g. proxy.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args()
    script = HERE / args.script
    if not script.is_file():
        parser.error(f"no benchmark script {script}")
    runs: list[dict[str, float | None]] = []
    for number in range(1, args.runs + 1):
        result = subprocess.run(
            [sys.executable, str(script), *args.args], capture_output=True, text=True, check=False
        )
        figures = summary_of(result.stdout)
        if result.returncode != 0 or figures is None:
            print(f"run {number}: failed (exit {result.returncode}); its output:", flush=True)
            print(result.stdout[-3000:] + result.stderr[-3000:], flush=True)
            continue
        runs.append(figures)
        print(
            f"run {number}: "
            + ", ".join(f"{k} {v:.3g}" for k, v in figures.items() if v is not None),
            flush=True,
        )
    if not runs:
        print("no run succeeded")
        return 1
    command = " ".join([args.script, *args.args])
    print(f"medians of {len(runs)} run{'s' * (len(runs) != 1)} of {command}:")
    for name in runs[0]:
        numbers = [float(value) for run in runs if (value := run.get(name)) is not None]
        if not numbers:
            continue
        print(
            f"  {name}: median {statistics.median(numbers):.4g} "
            f"(range {min(numbers):.4g} to {max(numbers):.4g}, {len(numbers)} runs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
