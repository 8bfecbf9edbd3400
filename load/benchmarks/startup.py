"""How long ``protoconform serve`` takes from process start to its ready line.

Prints the median over several starts, next to the start-up time of a bare
Python interpreter measured in the same run (the machines are shared and noisy,
so the ratio is the stable figure).  Target: ready in under 3 s.

    python -m protoconform.load.benchmarks.startup [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from protoconform.mockserver.launcher import ServerProcess

TARGET_SECONDS = 3.0


def bare_python() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def server_start() -> float:
    start = time.perf_counter()
    process = ServerProcess().start()
    elapsed = time.perf_counter() - start
    process.stop()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    server_start()  # warm the compiled-proto cache and the OS file cache
    baseline = statistics.median(bare_python() for _ in range(args.runs))
    startup = statistics.median(server_start() for _ in range(args.runs))
    print(f"bare python start:    {baseline:.3f} s (median of {args.runs})")
    print(f"server ready line:    {startup:.3f} s (median of {args.runs})")
    print(f"ratio to bare python: {startup / baseline:.1f}x")
    print(f"target < {TARGET_SECONDS:.1f} s: {'met' if startup < TARGET_SECONDS else 'NOT met'}")
    return 0 if startup < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
