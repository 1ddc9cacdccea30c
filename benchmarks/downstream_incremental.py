"""Run a study config seed by seed, appending each (seed, setting) to the CSV as it finishes.

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_incremental.py CONFIG CSV [--seeds N]
    pairdesign simulate CONFIG --from-csv CSV --seeds M --out-dir DIR   # the summary of M seeds

On a loaded machine a study may not finish in the time there is: this runner loops over seeds
(outer) and settings (inner), so stopping it at any point leaves complete seeds for every
setting; it resumes where the CSV stops (pairs already written are skipped). The rows are those
of ``pairdesign simulate`` (:func:`pairdesign.simulate.study.run_study` on one seed at a time).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import os
import time

from pairdesign.simulate import load_config, run_study
from pairdesign.simulate.study import COLUMNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("csv")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--designs", help="comma-separated names: run only these designs/baselines")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    config = load_config(args.config, seeds=args.seeds)
    done = set()
    if os.path.exists(args.csv):
        with open(args.csv, newline="") as handle:
            done = {(row["setting"], int(row["seed"]), row["design"]) for row in csv.DictReader(handle)}
    else:
        with open(args.csv, "w", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writeheader()
    wanted = None if args.designs is None else set(args.designs.split(","))
    for seed in config.seeds:
        for setting in config.settings:
            def pending(specs):
                return tuple(s for s in specs if (setting.name, seed, s.name) not in done
                             and (wanted is None or s.name in wanted))
            designs, baselines = pending(config.designs), pending(config.baselines)
            if not designs and not baselines:
                continue
            t0 = time.perf_counter()
            rows = run_study(dataclasses.replace(config, settings=(setting,), seeds=(seed,),
                                                 designs=designs, baselines=baselines), progress=False)
            with open(args.csv, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                for row in rows:
                    writer.writerow({k: (f"{row[k]:.10g}" if isinstance(row[k], float) else row[k])
                                     for k in COLUMNS})
            print(f"{setting.name}: seed {seed} done ({time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
