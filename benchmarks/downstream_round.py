"""Merge the round-D runs (benchmarks/downstream_round.toml) into the main study's CSV (issue 6).

    pairdesign simulate benchmarks/downstream_round.toml --out-dir /tmp --no-plot
    python benchmarks/downstream_round.py /tmp/downstream-round.csv benchmarks/figures/downstream.csv
    pairdesign simulate benchmarks/downstream.toml --from-csv benchmarks/figures/downstream.csv \\
        --out-dir benchmarks/figures

The round config has the same settings, seeds and budgets as benchmarks/downstream.toml, so the
worlds and labels are the same. Checked here: every baseline row of the round run agrees with the
main CSV (relative 1e-6: the DPO fit gained a Newton polish after the main study ran, which moves
gaps by about 1e-8). The merged CSV has the rows in the order a full run of downstream.toml writes
them (setting, seed, design in config order, budget); round-D rows already present are replaced.
"""

from __future__ import annotations

import sys

import numpy as np

from pairdesign.simulate.study import load_config, read_csv, write_csv

NEW = "round-D"


def main(round_csv: str, main_csv: str) -> None:
    config = load_config("benchmarks/downstream.toml")
    new = read_csv(round_csv)
    old = [r for r in read_csv(main_csv) if r["design"] != NEW]
    key = lambda r: (r["setting"], r["design"], r["budget"], r["seed"])  # noqa: E731
    index = {key(r): r for r in old}
    checked, worst = 0, 0.0
    for r in new:
        if r["design"] == NEW:
            continue
        same = index.get(key(r))
        if same is None:
            raise SystemExit(f"{key(r)} is not in {main_csv}")
        rel = abs(same["gap"] - r["gap"]) / max(abs(same["gap"]), 1e-300)
        worst = max(worst, rel)
        if not np.isclose(same["gap"], r["gap"], rtol=1e-6, atol=0):
            raise SystemExit(f"worlds differ: {key(r)} {same['gap']} vs {r['gap']}")
        checked += 1
    added = [r for r in new if r["design"] == NEW]
    settings = [s.name for s in config.settings]
    designs = [d.name for d in config.designs + config.baselines]
    rows = sorted(old + added, key=lambda r: (settings.index(r["setting"]), r["seed"],
                                              designs.index(r["design"]), r["budget"]))
    write_csv(rows, main_csv)
    print(f"{checked} baseline rows agree with {main_csv} (largest relative gap difference {worst:.2g}); "
          f"merged {len(added)} {NEW} rows: {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
