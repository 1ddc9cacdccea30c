"""The first-order gap model and the certified savings ceiling of the downstream study."""

from __future__ import annotations

import itertools

import numpy as np

from pairdesign.simulate import DesignSpec, Labeler, Setting, fit_policy, make_world
from pairdesign.simulate.ceiling import (first_order_gap, gap_hessian, savings_ceiling, variance_bound,
                                         variance_gap)


def test_first_order_gap_predicts_the_mean_exact_gap_of_the_ridge_fit():
    world = make_world(Setting(dim=3, completions=4, train_prompts=60, test_prompts=40, reward_scale=1.5), 1)
    j, k = world.train.all_pairs()
    gaps = []
    for seed in range(150):
        labels = Labeler(world, seed).label(j, k)
        gaps.append(world.evaluate(fit_policy(world, j, k, labels))["gap"])
    model = first_order_gap(world, j, k)
    assert abs(np.mean(gaps) / model - 1.0) < 0.2, (np.mean(gaps), model)
    # half the labels: the model's gap grows about twice, and so does the measured one
    half = first_order_gap(world, j[::2], k[::2])
    assert 1.6 < half / model < 2.6
    # without ridge and bias, the variance term alone is the same order at this many labels
    assert abs(variance_gap(world, j, k) / model - 1.0) < 0.3


def test_variance_bound_is_certified_against_every_design_of_a_tiny_pool():
    world = make_world(Setting(dim=2, completions=3, train_prompts=3, test_prompts=10, reward_scale=2.0), 4)
    j, k = world.train.all_pairs()  # 9 pairs
    H = gap_hessian(world)
    B = 4
    values = [variance_gap(world, j[list(c)], k[list(c)], H) for c in itertools.combinations(range(len(j)), B)]
    best = min(values)
    bound = variance_bound(world, B, H, tol=1e-6)
    assert bound.lower <= best * (1 + 1e-6)
    assert bound.lower > 0.5 * best  # a bound, not a vacuous one
    assert len(bound.j) == B and len(set(zip(bound.j, bound.k))) == B
    assert bound.achieved >= best * (1 - 1e-9)
    assert bound.achieved == variance_gap(world, bound.j, bound.k, H)


def test_savings_ceiling_bounds_the_designs_and_the_oracle():
    world = make_world(Setting(dim=3, completions=5, train_prompts=60, test_prompts=30), 2)
    labeler = Labeler(world, 2)
    baselines = [DesignSpec(name="random", method="random", baseline=True),
                 DesignSpec(name="max-distance", method="max-distance", baseline=True)]
    designs = [DesignSpec(name="greedy-D", method="greedy")]
    c = savings_ceiling(world, labeler, [6, 12, 24], baselines, designs, baseline_budgets=[3, 6, 12, 24, 48, 96])
    assert np.all(c.any_design >= c.oracle * (1 - 1e-9))
    assert np.all(c.any_design >= c.designs["greedy-D"] * (1 - 1e-9))
    assert np.all(c.oracle > 1.0)  # knowing theta* beats both baselines in the V model
    assert set(c.best_baseline) <= {"random", "max-distance"}


def test_cli_ceiling_writes_a_table_whose_rows_bound_the_exact_pilot(tmp_path, capsys):
    import csv
    from pathlib import Path

    from pairdesign.cli import main

    config = Path(__file__).parent / "data" / "simulate_tiny.toml"
    assert main(["simulate", str(config), "--out-dir", str(tmp_path), "--no-plot", "--ceiling", "1"]) == 0
    out = capsys.readouterr()
    assert "tiny-ceiling.md" in out.out and "relax:" not in out.err  # solver lines stay out
    with open(tmp_path / "tiny-ceiling.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 * 3  # the first seed x budgets
    for row in rows:
        # no baseline design beats the certified bound: it needs at least the budget's labels
        assert float(row["ceiling"]) >= 1.0 - 1e-9
        assert float(row["ceiling"]) >= float(row["oracle"]) * (1 - 1e-9)
    table = (tmp_path / "tiny-ceiling.md").read_text()
    assert "| 1d (3) |" in table and "| 4d (12) |" in table
