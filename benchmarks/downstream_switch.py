"""Out-of-sample check of a budget-switching design rule (issue 6).

The rule, read off the anisotropic runs (downstream, downstream-beyond, downstream-oracle): below
8d labels use greedy D with weights 1/4; from 8d use greedy L with the pilot's weights and H. It is
checked here on the three other worlds of the main study, which did not choose it:

    pairdesign simulate benchmarks/downstream_switch.toml --out-dir benchmarks/figures --no-plot
    python benchmarks/downstream_switch.py benchmarks/figures/downstream.csv \\
        benchmarks/figures/downstream-switch.csv

The switch toml has the same settings and seeds as the main study, so the worlds and labels are
the same (checked: the random baseline's rows must agree); the rule's runs are the main study's
greedy-D runs below 8d and the pilot-weighted L runs from 8d.
"""

from __future__ import annotations

import sys

import numpy as np

from pairdesign.simulate.study import compute_savings, load_config, read_csv

SWITCH_AT = 8  # multiples of d


def main(main_csv: str, switch_csv: str) -> None:
    config = load_config("benchmarks/downstream.toml")
    dims = {s.name: s.dim for s in config.settings}
    extra = read_csv(switch_csv)
    settings = sorted({r["setting"] for r in extra})
    rows = [r for r in read_csv(main_csv) if r["setting"] in settings]
    key = lambda r: (r["setting"], r["design"], r["budget"], r["seed"])  # noqa: E731
    index = {key(r): r for r in rows}
    for r in extra:
        if r["design"] == "random":
            same = index[key(r)]
            if not np.isclose(same["gap"], r["gap"], rtol=1e-8):
                raise SystemExit(f"worlds differ: {key(r)} {same['gap']} vs {r['gap']}")
    lw = [r for r in extra if r["design"] == "greedy-L-pilot-scoreweights"]
    rows += lw
    for r in rows[:]:
        small = r["budget"] < SWITCH_AT * dims[r["setting"]]
        if (small and r["design"] == "greedy-D") or (not small and r["design"] == "greedy-L-pilot-scoreweights"):
            rows.append({**r, "design": f"switch-D-to-Lscores-at-{SWITCH_AT}d"})
    baselines = [b.name for b in config.baselines]
    keep = {"greedy-D", "greedy-L-pilot-scoreweights", f"switch-D-to-Lscores-at-{SWITCH_AT}d", *baselines}
    sav = compute_savings([r for r in rows if r["design"] in keep], baselines, n_boot=config.bootstrap)
    budgets = sav[0].budgets
    print("| setting | design | " + " | ".join(f"{b / budgets[0]:g}d" for b in budgets) + " |")
    print("|---|---|" + "---:|" * len(budgets))
    for s in sav:
        cells = [f"{'>' if c else ''}{v:.2f} [{lo:.2f}, {'inf' if not np.isfinite(hi) else f'{hi:.2f}'}]"
                 for v, lo, hi, c in zip(s.savings, s.low, s.high, s.censored)]
        print(f"| {s.setting} | {s.design} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
