"""Measure how many bounce messages per second parse_bounce handles on one core.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_bounces.py [--seconds 5] [--corpus DIR]

The script pins itself to one CPU where the OS allows it and parses every
``*.eml`` file of the corpus in turn until the time is up. It prints the
rate over the whole corpus and the rate of the slowest file. Files are read
into memory first, so the number excludes disk I/O.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from net119.bounces import parse_bounce  # noqa: E402


def pin_to_one_cpu() -> str:
    """Restrict this process to one CPU and return a description of it."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this OS)"
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[0]})
    return f"pinned to CPU {allowed[0]}"


def measure(corpus: list[bytes], seconds: float) -> tuple[int, float]:
    """Parse the corpus round-robin for ``seconds``; return (messages, elapsed)."""
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for raw in corpus:
            parse_bounce(raw)
        count += len(corpus)
    return count, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="measuring time in seconds"
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=ROOT / "tests" / "data" / "bounces",
        help="folder of *.eml files to parse",
    )
    arguments = parser.parse_args()

    paths = sorted(arguments.corpus.glob("*.eml"))
    if not paths:
        print(f"no *.eml files in {arguments.corpus}", file=sys.stderr)
        return 1
    corpus = [path.read_bytes() for path in paths]
    cpu = pin_to_one_cpu()

    # Warm up imports, regular expressions and caches before measuring.
    measure(corpus, 0.5)
    count, elapsed = measure(corpus, arguments.seconds)

    slowest_name, slowest_rate = "", float("inf")
    for path, raw in zip(paths, corpus, strict=False):
        file_count, file_elapsed = measure([raw], 0.2)
        rate = file_count / file_elapsed
        if rate < slowest_rate:
            slowest_name, slowest_rate = path.name, rate

    total_bytes = sum(len(raw) for raw in corpus)
    machine = f"{os.cpu_count()} CPUs in the machine"
    print(f"python {platform.python_version()}, {cpu}, {machine}")
    print(f"corpus: {len(corpus)} files, {total_bytes} bytes, from {arguments.corpus}")
    print(
        f"parsed {count} messages in {elapsed:.2f} s: {count / elapsed:.0f} messages/s"
    )
    print(f"slowest file: {slowest_name} at {slowest_rate:.0f} messages/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
