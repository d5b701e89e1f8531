#!/usr/bin/env python3
"""Compares the losses of two runs' metrics.jsonl files line by line.

Used to show that a refactoring kept training bit-for-bit (to a tolerance):
train the same seeded configuration with the old and the new build, then

    python3 scripts/compare_metrics.py OLD_RUN/metrics.jsonl NEW_RUN/metrics.jsonl

Every key ending in `loss` (the total and each objective's) and every
objective metric is compared; timing keys (samples/s, elapsed) are not.
Exits 1 when a value differs by more than --tol (absolute) or the files
have different steps or keys.
"""
import argparse
import json
import sys

TIMING = {"samples_per_second", "elapsed_seconds"}


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args()
    old, new = records(args.old), records(args.new)
    if [r["step"] for r in old] != [r["step"] for r in new]:
        print(f"different steps: {len(old)} vs {len(new)} records")
        return 1
    worst = (0.0, None, None)
    for a, b in zip(old, new):
        keys = set(a) - TIMING
        if keys != set(b) - TIMING:
            print(f"step {a['step']}: different keys {sorted(keys ^ (set(b) - TIMING))}")
            return 1
        for key in sorted(keys - {"step"}):
            diff = abs(float(a[key]) - float(b[key]))
            if diff > worst[0] or worst[1] is None:
                worst = (diff, a["step"], key)
    diff, step, key = worst
    print(f"{len(old)} records, max |difference| {diff:.3g} (step {step}, {key})")
    return 0 if diff <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
