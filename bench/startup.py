"""By-hand benchmark of start-up (issue #17, item 6): `oiradar --version` and the import
path of `oiradar scan --help`, each the median of several cold processes.

Target: `oiradar --version` < 0.15 s.

    python bench/startup.py
    python bench/startup.py --runs 21
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

EXE = Path(sys.executable).parent / "oiradar"
TARGET_S = 0.15


def median_s(args: list[str], runs: int, exe: str = str(EXE)) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([exe, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args(argv)
    median_s(["--version"], 2)  # warm the OS file cache: "cold" is a new process, not a disk
    version = median_s(["--version"], args.runs)
    python = median_s(["-c", "pass"], args.runs, sys.executable)
    for line in (
        f"oiradar --version     median {version * 1000:6.1f} ms",
        f"oiradar scan --help   median {median_s(['scan', '--help'], args.runs) * 1000:6.1f} ms",
        f"oiradar --help        median {median_s(['--help'], args.runs) * 1000:6.1f} ms",
        f"python -c pass        median {python * 1000:6.1f} ms  (the floor under the rest)",
    ):
        print(line, flush=True)
    verdict = "PASS" if version < TARGET_S else "MISS"
    print(f"--version {version:.3f} s  [target < {TARGET_S} s: {verdict}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
