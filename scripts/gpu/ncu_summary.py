#!/usr/bin/env python3
"""Summarises an `ncu --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum` log of decode
steps: device time and DRAM bytes per kernel name, per step (steps counted by a marker kernel)."""
import csv, sys, collections

path, marker = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "sample")
rows = []
with open(path) as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    rows.append(r)
by = collections.defaultdict(lambda: [0, 0.0, 0.0])
kid = {}
for r in rows:
    k = (r["ID"], r["Kernel Name"])
    name = (r["Kernel Name"].split("(")[0][:44] + " " + r["Grid Size"])[:60]
    v = float(r["Metric Value"].replace(",", ""))
    unit = r["Metric Unit"]
    if r["Metric Name"] == "gpu__time_duration.sum":
        us = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}[unit] * v
        by[name][1] += us
        by[name][0] += 1
    elif r["Metric Name"] == "dram__bytes_read.sum":
        mult = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9}.get(unit, 1)
        by[name][2] += v * mult
steps = max(1, sum(c for n, (c, _, _) in by.items() if marker in n))
tot = sum(t for _, t, _ in by.values())
totb = sum(b for _, _, b in by.values())
print(f"{steps} steps (marker {marker!r}); per step: {tot/steps:.1f} us device, {totb/steps/1e6:.1f} MB DRAM read")
print(f"{'kernel':60s} {'n/step':>7s} {'us/step':>9s} {'us/call':>8s} {'MB/step':>8s} {'GB/s':>7s}")
for n, (c, t, b) in sorted(by.items(), key=lambda x: -x[1][1]):
    print(f"{n:60s} {c/steps:7.1f} {t/steps:9.1f} {t/c:8.2f} {b/steps/1e6:8.1f} {b/(t*1e3) if t else 0:7.0f}")
