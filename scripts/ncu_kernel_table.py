#!/usr/bin/env python3
"""Sums `ncu --csv --page raw --metrics gpu__time_duration.sum` rows by kernel name.

Usage: ncu_kernel_table.py RAW.csv STEPS [TOP]
Prints the kernels that took the most GPU time per step (total over the profiled launches
divided by STEPS), their launch counts per step, and the total GPU time per step, so the
step's wall time from `bench` can be compared with the time the GPU was busy.
"""
import csv
import re
import sys
from collections import defaultdict


def short_name(name: str) -> str:
    # Drop argument lists, keep template arguments (they name the functor or dtype).
    name = re.sub(r"\(.*\)$", "", name.strip())
    return name[:110]


def main() -> None:
    path, steps = sys.argv[1], float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    total_ns = defaultdict(float)
    count = defaultdict(int)
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu prints its own lines first
    rows = list(csv.reader(lines))
    header = rows[0]
    name_col = header.index("Kernel Name")
    time_col = header.index("gpu__time_duration.sum")
    unit = rows[1][time_col] if len(rows) > 1 else "ns"
    scale = {"ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6}.get(unit, 1.0)
    for row in rows[2:]:
        try:
            t = float(row[time_col].replace(",", "")) * scale
        except (ValueError, IndexError):
            continue
        key = short_name(row[name_col])
        total_ns[key] += t
        count[key] += 1
    grand = sum(total_ns.values())
    print(f"GPU busy per step: {grand / steps / 1e6:.2f} ms over "
          f"{sum(count.values()) / steps:.0f} kernel launches")
    print(f"{'ms/step':>8} {'share':>6} {'launches':>8}  kernel")
    for key, t in sorted(total_ns.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{t / steps / 1e6:8.3f} {100 * t / grand:5.1f}% {count[key] / steps:8.0f}  {key}")


if __name__ == "__main__":
    main()
