#!/usr/bin/env python3
"""fdatasync latency of the disk under a folder (default: the current one).

The send benchmark's p99 follows this number: every accepted send waits for one group commit's
fsync. Usage: bench/fsync-latency.py [folder] [count=300]
"""
import os
import sys
import tempfile
import time

folder = sys.argv[1] if len(sys.argv) > 1 else "."
count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
fd, path = tempfile.mkstemp(dir=folder, prefix=".fsync-probe-")
try:
    times = []
    for _ in range(count):
        os.write(fd, b"x" * 4096)
        t = time.perf_counter()
        os.fdatasync(fd)
        times.append(time.perf_counter() - t)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(len(times) * q))] * 1e3
    print(f"fdatasync of 4 KiB, {count} times: p50 {pick(0.5):.2f} ms, p90 {pick(0.9):.2f} ms, p99 {pick(0.99):.2f} ms")
finally:
    os.close(fd)
    os.remove(path)
