"""The downstream study: the world's exact gap, the fit, the designs, the savings, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from pairdesign.cli import main
from pairdesign.errors import OptionError
from pairdesign.information import prior_information
from pairdesign.simulate import (DesignSpec, Labeler, Setting, compute_savings, fit_policy,
                                 labels_to_reach, load_config, make_world, objective_J, policy_gap,
                                 run_design, run_study)
from pairdesign.simulate.designs import greedy_mse

TINY = Path(__file__).parent / "data" / "simulate_tiny.toml"


def small_setting(**kw) -> Setting:
    base = dict(name="small", dim=3, completions=4, train_prompts=40, test_prompts=30)
    base.update(kw)
    return Setting(**base)


# ------------------------------------------------------------------------------ the exact gap
def _J_direct(prompts, theta, theta_star, beta):
    """J(pi_theta) by explicit sums over prompts and completions."""
    K = prompts.n_completions
    total = 0.0
    for i in range(prompts.n_prompts):
        rows = range(i * K, (i + 1) * K)
        ref = np.array([np.exp(prompts.ref_logits[r]) for r in rows])
        ref /= ref.sum()
        w = np.array([ref[a] * np.exp(prompts.features[r] @ theta / beta) for a, r in enumerate(rows)])
        pi = w / w.sum()
        reward = sum(pi[a] * (prompts.features[r] @ theta_star) for a, r in enumerate(rows))
        kl = sum(pi[a] * np.log(pi[a] / ref[a]) for a in range(K))
        total += reward - beta * kl
    return total / prompts.n_prompts


@pytest.mark.parametrize("reference,beta", [("uniform", 1.0), ("random", 0.5), ("random", 2.0)])
def test_gap_is_zero_at_theta_star_positive_elsewhere_and_equals_J_difference(reference, beta):
    world = make_world(small_setting(reference=reference, beta=beta, reward_scale=2.0), seed=3)
    test, theta = world.test, world.theta
    assert policy_gap(test, theta, theta, beta) == pytest.approx(0.0, abs=1e-14)
    rng = np.random.default_rng(0)
    for scale in (1e-2, 0.3, 3.0):
        other = theta + scale * rng.standard_normal(theta.shape)
        gap = policy_gap(test, other, theta, beta)
        assert gap > 0
        direct = _J_direct(test, theta, theta, beta) - _J_direct(test, other, theta, beta)
        assert gap == pytest.approx(direct, rel=1e-9, abs=1e-13)
        assert objective_J(test, other, theta, beta) == pytest.approx(_J_direct(test, other, theta, beta), rel=1e-9)
    # pi* maximises J: no other theta does better
    assert objective_J(test, theta, theta, beta) >= objective_J(test, 0.9 * theta, theta, beta)


def test_gap_second_order_is_the_policy_covariance():
    """gap(theta* + t v) ~ t^2 v^T H* v / (2 beta): the matrix of the L criterion."""
    from pairdesign.simulate.world import policy_covariance

    world = make_world(small_setting(beta=0.7), seed=1)
    H = policy_covariance(world.test, world.theta, 0.7)
    v = np.array([0.3, -1.0, 0.5])
    t = 1e-4
    gap = policy_gap(world.test, world.theta + t * v, world.theta, 0.7)
    assert gap == pytest.approx(t * t * v @ H @ v / (2 * 0.7), rel=1e-3)


# ------------------------------------------------------------------------------ labels and fit
def test_labels_are_common_random_numbers_with_bradley_terry_frequencies():
    world = make_world(small_setting(train_prompts=400, reward_scale=1.5), seed=2)
    lab = Labeler(world, seed=5)
    j, k = world.train.all_pairs()
    y = lab.label(j, k)
    assert np.array_equal(lab.label(k, j), 1 - y)  # the same comparison, the other way round
    assert np.array_equal(Labeler(world, seed=5).label(j, k), y)
    assert not np.array_equal(Labeler(world, seed=6).label(j, k), y)
    p = 1 / (1 + np.exp(-(world.train.features[j] - world.train.features[k]) @ world.theta))
    # mean outcome matches the Bradley-Terry probability (binomial sd over ~2400 pairs ~ 0.01)
    assert abs(y.mean() - p.mean()) < 0.04
    assert np.corrcoef(y, p)[0, 1] > 0.3


def test_fit_recovers_theta_star_as_labels_grow():
    world = make_world(small_setting(train_prompts=3000, reward_scale=2.0, ridge=1.0), seed=0)
    lab = Labeler(world, seed=0)
    j, k = world.train.all_pairs()
    rng = np.random.default_rng(0)
    errors, gaps = [], []
    for m in (30, 300, 3000, 18000):
        pick = rng.choice(len(j), size=m, replace=False)
        theta = fit_policy(world, j[pick], k[pick], lab.label(j[pick], k[pick]))
        errors.append(np.linalg.norm(theta - world.theta) / np.linalg.norm(world.theta))
        gaps.append(world.evaluate(theta)["gap"])
    assert errors[-1] < 0.08
    assert errors[-1] < errors[1] < errors[0]
    assert gaps[-1] < 0.05 * gaps[0]
    assert world.evaluate(world.theta)["accuracy"] == 1.0


# ------------------------------------------------------------------------------ designs
@pytest.mark.parametrize("spec", [
    DesignSpec("g", "greedy"),
    DesignSpec("two", "greedy", "L", pilot="two-stage", weights="scores"),
    DesignSpec("rs", "relax", sample=True),
    DesignSpec("rr", "relax"),
    DesignSpec("mse", "greedy-mse", "MSE", pilot="pilot"),
    DesignSpec("mse-rounds", "greedy-mse", "MSE", pilot="rounds", rounds=3),
    DesignSpec("L-rounds", "greedy", "L", pilot="rounds", rounds=2, weights="scores"),
    DesignSpec("fk", "first-k", options={"k": 4}, baseline=True),
    DesignSpec("bw", "best-vs-worst", baseline=True),
])
def test_every_design_buys_the_budget_in_distinct_pairs(spec):
    world = make_world(small_setting(), seed=4)
    out = run_design(world, Labeler(world, 4), spec, 13, seed=4)
    assert len(out.j) == 13
    keys = {(min(a, b), max(a, b)) for a, b in zip(out.j, out.k)}
    assert len(keys) == 13
    prompt = np.repeat(np.arange(world.train.n_prompts), world.train.n_completions)
    assert np.array_equal(prompt[out.j], prompt[out.k])


def test_greedy_mse_first_pick_minimises_the_bias_variance_criterion():
    world = make_world(small_setting(train_prompts=10, reward_scale=2.0, ridge=0.5), seed=7)
    spec = DesignSpec("mse", "greedy-mse", "MSE", pilot="pilot")
    inst = world.instance(1)
    H = world.policy_covariance(world.pilot)
    j, k = greedy_mse(world, inst, spec, 1, H, world.pilot, np.random.default_rng(0))
    r, th = inst.ridge, world.pilot

    def phi(M):
        A = np.linalg.inv(M)
        F = M - r * np.eye(3)
        return np.trace(H @ A @ (F + r * r * np.outer(th, th)) @ A)

    M0 = prior_information(inst)
    cand = inst.candidates
    Z = inst.features[cand.j] - inst.features[cand.k]
    values = [phi(M0 + 0.25 * np.outer(z, z)) for z in Z]
    best = int(np.argmin(values))
    assert (j[0], k[0]) == (cand.j[best], cand.k[best])


def test_two_stage_puts_the_first_stage_in_M0_and_keeps_pairs_distinct():
    world = make_world(small_setting(), seed=9)
    spec = DesignSpec("two", "greedy", "D", pilot="two-stage")
    out = run_design(world, Labeler(world, 9), spec, 20, seed=9)
    assert len({(min(a, b), max(a, b)) for a, b in zip(out.j, out.k)}) == 20


def test_spec_validation():
    with pytest.raises(OptionError, match="need a pilot"):
        DesignSpec("x", "greedy", weights="scores")
    with pytest.raises(OptionError, match="unknown key"):
        DesignSpec.from_dict({"name": "x", "method": "greedy", "critrion": "D"})
    with pytest.raises(OptionError, match="features"):
        Setting(features="spherical")


# ------------------------------------------------------------------------------ savings
def test_labels_to_reach_interpolates_power_laws_exactly():
    budgets = np.array([10, 20, 40, 80, 160])
    gaps = 3.0 / budgets ** 0.7
    assert labels_to_reach(budgets, gaps, 3.0 / 55 ** 0.7) == pytest.approx(55)
    assert labels_to_reach(budgets, gaps, 3.0 / 400 ** 0.7) == np.inf  # never reached
    # a noisy bump does not make a later budget look necessary
    assert labels_to_reach(budgets, np.array([1.0, 0.5, 0.6, 0.25, 0.1]), 0.55) < 20


def test_savings_on_synthetic_curves_with_a_known_answer():
    budgets = [16, 32, 64, 128, 256]
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(9):
        noise = np.exp(0.01 * rng.standard_normal())
        for B in budgets:
            for name, gap in [("design", 1.0 / (2.0 * B)), ("slow", 1.0 / B), ("fast", 1.0 / (1.5 * B))]:
                rows.append({"setting": "s", "design": name, "budget": B, "seed": seed,
                             "gap": gap * noise, "param_error": 0.0, "accuracy": 1.0, "seconds": 0.0})
    (sav,) = compute_savings(rows, ["slow", "fast"], n_boot=200)
    # the best baseline ("fast", gap 1/(1.5 n)) needs n = 4B/3 labels for the design's gap 1/(2B)
    assert np.allclose(sav.savings[:-1], 4 / 3, rtol=1e-6)
    assert sav.best_baseline[:-1] == ["fast"] * 4
    assert sav.censored[-1] and not sav.censored[:-1].any()  # beyond the largest budget: a bound
    assert np.all(sav.low[:-1] <= 4 / 3 + 1e-9) and np.all(sav.high[:-1] >= 4 / 3 - 1e-9)


# ------------------------------------------------------------------------------ study and CLI
def _rows_without_time(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_seeds_reproduce_a_run_and_unknown_methods_are_skipped(caplog):
    config = load_config(TINY)
    with caplog.at_level(logging.WARNING, logger="pairdesign.simulate"):
        first = run_study(config, progress=False)
    assert "'annealing'" in caplog.text and "'round'" not in caplog.text
    second = run_study(config, progress=False)
    assert _rows_without_time(first) == _rows_without_time(second)
    other = run_study(dataclasses.replace(config, seeds=(7, 8)), progress=False)
    assert _rows_without_time(other) != _rows_without_time(first)


def test_cli_writes_csv_png_and_summary(tmp_path, capsys):
    assert main(["-q", "simulate", str(TINY), "--out-dir", str(tmp_path)]) == 0
    csv_path = tmp_path / "tiny.csv"
    rows = list(csv.DictReader(csv_path.open()))
    assert set(rows[0]) == {"setting", "design", "budget", "seed", "gap", "param_error", "accuracy", "seconds"}
    config = load_config(TINY)
    expected = {d.name for d in config.designs + config.baselines if d.available}
    assert {r["design"] for r in rows} == expected
    assert len(rows) == len(expected) * 2 * 3
    assert all(float(r["gap"]) >= 0 for r in rows)
    assert (tmp_path / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "tiny-summary.md").read_text()
    assert "Savings against the best baseline" in summary and "greedy-D" in summary
    # the summary can be recomputed from the CSV alone
    assert main(["-q", "simulate", str(TINY), "--out-dir", str(tmp_path), "--from-csv", str(csv_path),
                 "--no-plot"]) == 0
    assert (tmp_path / "tiny-summary.md").read_text() == summary


def test_cli_bad_config_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nseeds = 1\n[[settings]]\nname = "x"\ndimension = 3\n')
    assert main(["simulate", str(bad), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pairdesign: error:") and "dimension" in err
