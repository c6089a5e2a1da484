#!/usr/bin/env python3
"""Sums an Nsight Compute log of decode steps per kernel.

Input: `ncu --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum ...` (one row per kernel
launch and metric). Kernels are keyed by name and grid size, so that launches of one kernel for
different matrices stay apart. Steps are counted by a marker kernel that runs once per step
(default `sample_rows`); the captured window need not start or end on a step boundary, so the
per-step figures are averages over the window.

Usage: ncu_summary.py NCU_CSV [MARKER]
"""
import collections
import csv
import sys

TIME_UNITS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
BYTE_UNITS = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def main():
    path = sys.argv[1]
    marker = sys.argv[2] if len(sys.argv) > 2 else "sample_rows"
    with open(path) as f:
        lines = [line for line in f if line.startswith('"')]
    # name -> [launches, microseconds, DRAM bytes read]
    by = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for r in csv.DictReader(lines):
        name = (r["Kernel Name"].split("(")[0][:44] + " " + r["Grid Size"])[:60]
        v = float(r["Metric Value"].replace(",", ""))
        if r["Metric Name"] == "gpu__time_duration.sum":
            by[name][0] += 1
            by[name][1] += v * TIME_UNITS[r["Metric Unit"]]
        elif r["Metric Name"] == "dram__bytes_read.sum":
            by[name][2] += v * BYTE_UNITS[r["Metric Unit"]]
    steps = max(1, sum(c for n, (c, _, _) in by.items() if n.startswith(marker)))
    total_us = sum(t for _, t, _ in by.values())
    total_b = sum(b for _, _, b in by.values())
    print(f"{steps} steps (marker {marker!r}); per step: {total_us / steps:.1f} us device, "
          f"{total_b / steps / 1e6:.1f} MB DRAM read")
    print(f"{'kernel':60s} {'n/step':>7s} {'us/step':>9s} {'us/call':>8s} {'MB/step':>8s} {'GB/s':>7s}")
    for n, (c, t, b) in sorted(by.items(), key=lambda x: -x[1][1]):
        gbs = b / (t * 1e3) if t else 0.0
        print(f"{n:60s} {c / steps:7.1f} {t / steps:9.1f} {t / c:8.2f} {b / steps / 1e6:8.1f} {gbs:7.0f}")


if __name__ == "__main__":
    main()
