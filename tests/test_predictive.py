"""Posterior-predictive Bradley-Terry weights (issue 17): the math, the instance field in both
file formats, the empirical-Bayes posterior, next-round end to end, the study's rounds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special

import pairdesign
from pairdesign.errors import InstanceError, OptionError
from pairdesign.fit import fit_bradley_terry, fit_evidence, log_evidence
from pairdesign.information import prior_information
from pairdesign.instance import Instance, instances_equal, load_instance, save_instance
from pairdesign.predictive import (expected_information, expected_log_det, pair_logit_moments,
                                   predictive_probability, predictive_probability_quadrature,
                                   predictive_weights)


def small_instance(weights="predictive", seed=0, d=3, n=5, K=4, scale=1.0, **extra):
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal((n * K, d)) + 5.0  # a large shared offset: centring must not matter
    theta = scale * rng.standard_normal(d)
    A = rng.standard_normal((d, d))
    settings = dict(weights=weights, ridge=1.0, posterior_mean=theta, posterior_covariance=0.3 * A @ A.T)
    settings.update(extra)
    return Instance.from_arrays(phi, np.repeat(np.arange(n), K), budget=4, **settings)


def direct_weights(inst: Instance, theta, cov):
    """The pairs x d computation the package avoids: z_p, mu_p = z^T theta, s_p^2 = z^T Sigma z."""
    cand = inst.candidates
    Z = inst.features[cand.j] - inst.features[cand.k]
    mu, s2 = Z @ theta, np.einsum("pd,de,pe->p", Z, cov, Z)
    p = scipy.special.expit(mu / np.sqrt(1 + math.pi * s2 / 8))
    return p * (1 - p), mu, s2


# ----------------------------------------------------------------------------- the math
def test_predictive_weights_through_completions_equal_the_direct_computation():
    inst = small_instance()
    w, mu, s2 = direct_weights(inst, inst.posterior_mean, inst.posterior_covariance)
    assert np.allclose(inst.candidates.weight, w, rtol=1e-10, atol=1e-12)
    cand = inst.candidates
    mu2, s22 = pair_logit_moments(inst.features, cand.j, cand.k, inst.posterior_mean, inst.posterior_covariance)
    assert np.allclose(mu2, mu) and np.allclose(s22, s2)
    # M0 of labeled pairs uses the same weights
    lab = small_instance(labeled=np.array([[0, 1], [4, 7]]))
    Z = lab.features[[0, 4]] - lab.features[[1, 7]]
    wl, _, _ = direct_weights(Instance.from_arrays(lab.features, lab.prompt_of_row, budget=1, ridge=1.0,
                                                   pairs=np.array([[0, 1], [4, 7]]), weights="predictive",
                                                   posterior_mean=lab.posterior_mean,
                                                   posterior_covariance=lab.posterior_covariance),
                              lab.posterior_mean, lab.posterior_covariance)
    assert np.allclose(prior_information(lab), np.eye(3) + (Z.T * wl) @ Z)


def test_predictive_weights_tend_to_uniform_with_a_vague_posterior_or_theta_zero():
    inst = small_instance()
    cand = inst.candidates
    d = inst.dim
    vague = predictive_weights(inst.features, cand.j, cand.k, inst.posterior_mean, 1e8 * np.eye(d))
    assert np.all(np.abs(vague - 0.25) < 1e-3) and not np.allclose(inst.candidates.weight, 0.25, atol=1e-2)
    zero = predictive_weights(inst.features, cand.j, cand.k, np.zeros(d), inst.posterior_covariance)
    assert np.allclose(zero, 0.25, rtol=0, atol=1e-15)


def test_predictive_and_expected_weights_tend_to_the_fitted_weights_as_sigma_vanishes():
    inst = small_instance(scale=2.0)
    cand = inst.candidates
    theta = inst.posterior_mean
    s = scipy.special.expit(inst.features[cand.j] @ theta - inst.features[cand.k] @ theta)
    fitted = s * (1 - s)
    scores = Instance.from_arrays(inst.features, inst.prompt_of_row, budget=4, ridge=1.0, weights="scores",
                                  scores=inst.features @ theta)
    assert np.allclose(scores.candidates.weight, fitted)
    for kind in ("predictive", "expected"):
        tiny = predictive_weights(inst.features, cand.j, cand.k, theta, 1e-10 * np.eye(inst.dim), kind=kind)
        assert np.allclose(tiny, fitted, rtol=1e-6, atol=1e-12)
        small = predictive_weights(inst.features, cand.j, cand.k, theta, 1e-2 * np.eye(inst.dim), kind=kind)
        assert np.abs(small - fitted).max() > 1e-6  # the posterior does change them


def test_tempering_the_posterior_moves_every_weight_toward_a_quarter():
    """Weights of the posterior N(theta, T Sigma): p = sigmoid(mu / sqrt(1 + pi T s^2 / 8)) moves
    toward 1/2 as T grows, so |w - 1/4| never grows and tends to 0 (through completions)."""
    inst = small_instance(scale=3.0)
    cand = inst.candidates
    theta, cov = inst.posterior_mean, inst.posterior_covariance
    last = None
    for T in (1.0, 2.0, 4.0, 16.0, 1e6):
        w = predictive_weights(inst.features, cand.j, cand.k, theta, T * cov)
        dist = np.abs(w - 0.25)
        if last is not None:
            assert np.all(dist <= last + 1e-15) and np.any(dist < last - 1e-6)
        last = dist
    assert last.max() < 1e-3


def test_expected_log_det_is_the_plug_in_at_a_point_posterior_and_the_integral_otherwise():
    """E_theta log det(ridge I + sum_m s_m (1 - s_m) z_m z_m^T) by posterior draws: exactly the plug-in
    value when Sigma = 0; in one dimension, the integral over theta ~ N(m, v) (scipy quad) within
    four Monte-Carlo standard errors."""
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((30, 3))
    theta = np.array([1.0, -2.0, 0.5])
    q = scipy.special.expit(Z @ theta)
    plug_in = np.linalg.slogdet(np.eye(3) * 0.5 + (Z.T * (q * (1 - q))) @ Z)[1]
    assert expected_log_det(Z, 0.5, theta, np.zeros((3, 3)), draws=8) == pytest.approx(plug_in, rel=1e-12)
    z = rng.standard_normal((25, 1)) * 2.0
    m, v = 0.7, 1.5

    def logdet(t):
        s = scipy.special.expit(z[:, 0] * t)
        return math.log(0.5 + float(np.sum(s * (1 - s) * z[:, 0] ** 2)))

    exact = scipy.integrate.quad(lambda t: logdet(t) * math.exp(-(t - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v),
                                 m - 12 * math.sqrt(v), m + 12 * math.sqrt(v))[0]
    draws = 4000
    values = [logdet(t) for t in m + math.sqrt(v) * np.random.default_rng(1).standard_normal(draws)]
    se = float(np.std(values)) / math.sqrt(draws)
    estimate = expected_log_det(z, 0.5, np.array([m]), np.array([[v]]), draws=draws,
                                rng=np.random.default_rng(2))
    assert abs(estimate - exact) < 4 * se
    assert estimate < logdet(m)  # the uncertain weights are worth less than the plug-in's (here)


def test_expected_information_is_below_the_predictive_weight_by_the_variance_of_sigmoid():
    """p(1 - p) - E[s(1 - s)] = Var[sigmoid(t)] >= 0; E[s(1 - s)] -> 0 as the posterior widens."""
    mu = np.array([-3.0, -0.5, 0.0, 1.0, 4.0, 0.2])
    s2 = np.array([0.0, 0.1, 1.0, 4.0, 9.0, 400.0])
    p = predictive_probability_quadrature(mu, s2)
    info = expected_information(mu, s2)
    second = np.array([scipy.integrate.quad(
        lambda t, m=m, v=v: scipy.special.expit(t) ** 2 * math.exp(-(t - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v),
        m - 40 * math.sqrt(v), m + 40 * math.sqrt(v), limit=200)[0] if v > 0 else scipy.special.expit(m) ** 2
        for m, v in zip(mu, s2)])
    assert np.allclose(p * (1 - p) - info, second - p * p, atol=1e-9)
    assert np.all(info <= p * (1 - p) + 1e-15) and info[-1] < 0.03


def test_quadrature_matches_scipy_quad():
    rng = np.random.default_rng(1)
    mu, s = rng.uniform(-8, 8, 30), np.concatenate([rng.uniform(0, 0.5, 10), rng.uniform(0.5, 10, 20)])
    ref = [scipy.integrate.quad(lambda t, m=m, v=v: scipy.special.expit(t) * math.exp(-(t - m) ** 2 / (2 * v * v))
                                / (v * math.sqrt(2 * math.pi)), m - 12 * v, m + 12 * v, limit=200)[0]
           for m, v in zip(mu, s)]
    assert np.allclose(predictive_probability_quadrature(mu, s ** 2), ref, atol=1e-9)


def test_probit_approximation_is_within_its_measured_error():
    """benchmarks/predictive_accuracy.py measured max |p_probit - p| = 0.0165 and max |dw| = 0.0149
    over mu in [-12, 12], s in [0, 12] (0.0131 / 0.0117 where |mu| <= 6, s <= 4); the tolerances
    are those figures rounded up."""
    mu, s = np.meshgrid(np.linspace(-12, 12, 97), np.linspace(0, 12, 49))
    mu, s2 = mu.ravel(), s.ravel() ** 2
    exact = predictive_probability_quadrature(mu, s2)
    approx = predictive_probability(mu, s2)
    assert np.abs(approx - exact).max() < 0.018
    assert np.abs(approx * (1 - approx) - exact * (1 - exact)).max() < 0.016
    assert np.abs(approx - exact).max() > 1e-3  # an approximation, not the same formula
    assert np.allclose(approx[s2 == 0], scipy.special.expit(mu[s2 == 0]))


# ----------------------------------------------------------------------------- the evidence
def test_log_evidence_matches_numerical_integration_in_one_dimension():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((80, 1))
    y = (rng.random(80) < scipy.special.expit(0.8 * z[:, 0])).astype(float)
    values = []
    for ridge in (0.1, 1.0, 10.0):
        fit = fit_bradley_terry(z, y, ridge=ridge)
        # exact log evidence: log int prod lik N(theta; 0, 1/ridge) dtheta
        # = -L(theta_hat) + log int exp(L(theta_hat) - L(theta)) dtheta + (1/2) log(ridge / (2 pi))
        f = lambda t: math.exp(-(np.sum(np.logaddexp(0, z[:, 0] * t) - y * z[:, 0] * t) + 0.5 * ridge * t * t) + fit.loss)  # noqa: E731
        integral = scipy.integrate.quad(f, -10, 10, points=[float(fit.theta[0])])[0]
        exact = -fit.loss + math.log(integral) + 0.5 * math.log(ridge / (2 * math.pi))
        values.append((exact, log_evidence(fit, ridge)))
    exact, approx = np.array(values).T
    assert np.allclose(approx, exact, atol=0.05)  # Laplace's error with 80 labels
    assert np.ptp(exact) > 0.5  # the ridges differ in evidence by more than that error


def test_evidence_shrinks_coin_flips_and_trusts_decisive_labels():
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((40, 4))
    coin = (rng.random(40) < 0.5).astype(float)
    decisive = (Z @ np.array([3.0, -3.0, 2.0, 0.0]) > 0).astype(float)
    _, ridge_coin = fit_evidence(Z, coin)
    _, ridge_decisive = fit_evidence(Z, decisive)
    assert ridge_coin >= 10 * ridge_decisive


# ----------------------------------------------------------------------------- the instance field
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_posterior_round_trips_in_both_formats(tmp_path, suffix):
    inst = small_instance()
    path = tmp_path / f"inst{suffix}"
    save_instance(inst, path)
    back = load_instance(path)
    assert instances_equal(inst, back)
    assert np.array_equal(back.posterior_mean, inst.posterior_mean)
    assert np.array_equal(back.posterior_covariance, inst.posterior_covariance)
    assert back.weights == "predictive" and np.array_equal(back.candidates.weight, inst.candidates.weight)
    plain = small_instance(weights="uniform", posterior_mean=None, posterior_covariance=None)
    save_instance(plain, path)
    assert load_instance(path).posterior_mean is None


def _bad_posteriors(d=3):
    good = np.eye(d)
    asym = np.eye(d)
    asym[0, 1] = 0.5
    yield "posterior.mean", "shape", dict(posterior_mean=np.zeros(d + 1), posterior_covariance=good)
    yield "posterior.covariance", "shape", dict(posterior_mean=np.zeros(d), posterior_covariance=np.eye(d + 1))
    yield "posterior.mean[1]", "finite", dict(posterior_mean=np.array([0, np.inf, 0]), posterior_covariance=good)
    yield "posterior.covariance[2][2]", "finite", dict(posterior_mean=np.zeros(d),
                                                       posterior_covariance=np.diag([1, 1, np.nan]))
    yield "posterior.covariance", "symmetric", dict(posterior_mean=np.zeros(d), posterior_covariance=asym)
    yield "posterior.covariance", "semidefinite", dict(posterior_mean=np.zeros(d),
                                                       posterior_covariance=np.diag([1.0, -0.5, 1.0]))
    yield "posterior.covariance", "both", dict(posterior_mean=np.zeros(d), posterior_covariance=None)


@pytest.mark.parametrize("field,words,values", list(_bad_posteriors()))
def test_bad_posteriors_are_refused_with_the_field(field, words, values):
    with pytest.raises(InstanceError) as exc:
        small_instance(**values)
    assert exc.value.field == field and words in str(exc.value)


def test_posterior_weights_need_a_posterior():
    with pytest.raises(InstanceError, match="weights: .*posterior"):
        small_instance(posterior_mean=None, posterior_covariance=None)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_bad_posterior_in_a_file_names_the_file_and_field(tmp_path, suffix):
    inst = small_instance()
    path = tmp_path / f"bad{suffix}"
    save_instance(inst, path)
    if suffix == ".json":
        doc = json.loads(path.read_text())
        doc["posterior"]["covariance"][0][1] += 1.0
        path.write_text(json.dumps(doc))
    else:
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
        data["posterior_covariance"] = data["posterior_covariance"][:2]
        np.savez(path, **data)
    with pytest.raises(InstanceError) as exc:
        load_instance(path)
    assert str(exc.value).startswith(str(path)) and "posterior.covariance" in str(exc.value)


def test_json_posterior_must_be_mean_and_covariance(tmp_path):
    path = tmp_path / "bad.json"
    save_instance(small_instance(), path)
    doc = json.loads(path.read_text())
    doc["posterior"]["mean"] = ["a", 1, 2]
    path.write_text(json.dumps(doc))
    with pytest.raises(InstanceError, match=r"posterior\.mean: must be a list of numbers"):
        load_instance(path)
    doc["posterior"] = {"mean": [0, 0, 0]}
    path.write_text(json.dumps(doc))
    with pytest.raises(InstanceError, match=r"bad\.json: posterior: must be an object"):
        load_instance(path)


# ----------------------------------------------------------------------------- next-round
def test_next_round_with_predictive_weights_end_to_end(tmp_path, capsys):
    from test_pipeline import World, run

    world = World(tmp_path)
    inst, design = tmp_path / "r0.npz", tmp_path / "d1.json"
    assert run(capsys, "import", world.path, "--out", inst, "--dim", 4, "--budget", 12)[0] == 0
    assert run(capsys, "solve", inst, "--method", "greedy", "--out", design)[0] == 0
    tasks, labels = tmp_path / "t1.jsonl", tmp_path / "l1.jsonl"
    assert run(capsys, "export", design, "--instance", inst, "--to", "jsonl", "--out", tasks)[0] == 0
    world.annotate(tasks, labels, seed=1)
    ridges = {}
    for posterior in ("fit", "evidence"):
        out, nxt, report = (tmp_path / f"r1-{posterior}.json", tmp_path / f"d2-{posterior}.json",
                            tmp_path / f"fit-{posterior}.json")
        code, stdout, err = run(capsys, "next-round", inst, "--labels", labels, "--weights", "predictive",
                                "--posterior", posterior, "--budget", 20, "--out", out, "--design-out", nxt,
                                "--report", report, "--method", "greedy", "--seed", 0)
        assert code == 0, err
        updated = pairdesign.load_instance(out)
        fit = json.loads(report.read_text())
        assert updated.weights == "predictive" and fit["design"]["weights"] == "predictive"
        assert pairdesign.load_design(nxt, updated).counts.sum() == 20
        # the weights are recomputable from the file: the probit predictive under the stored posterior
        w, _, _ = direct_weights(updated, updated.posterior_mean, updated.posterior_covariance)
        assert np.allclose(updated.candidates.weight, w)
        assert np.all(w <= 0.25) and np.all(w > 0)
        if posterior == "fit":  # the fit's own Laplace posterior: theta_hat and the inverse Hessian
            assert np.allclose(updated.posterior_mean, fit["theta"])
            assert np.allclose(np.sqrt(np.diag(updated.posterior_covariance)), fit["standard_errors"])
        ridges[posterior] = fit["posterior_ridge"]
    assert ridges["fit"] == pairdesign.load_instance(inst).ridge and ridges["evidence"] > 0
    # a tempered posterior: the evidence posterior's covariance times T, kept in the file
    plain = pairdesign.load_instance(tmp_path / "r1-evidence.json")
    out, nxt, report = tmp_path / "r1-t4.json", tmp_path / "d2-t4.json", tmp_path / "fit-t4.json"
    code, _, err = run(capsys, "next-round", inst, "--labels", labels, "--weights", "predictive",
                       "--temper", 4, "--budget", 20, "--out", out, "--design-out", nxt,
                       "--report", report, "--method", "greedy", "--seed", 0)
    assert code == 0, err
    tempered = pairdesign.load_instance(out)
    assert np.allclose(tempered.posterior_covariance, 4 * plain.posterior_covariance)
    assert np.allclose(tempered.posterior_mean, plain.posterior_mean)
    assert json.loads(report.read_text())["posterior_temper"] == 4
    w, _, _ = direct_weights(tempered, tempered.posterior_mean, tempered.posterior_covariance)
    assert np.allclose(tempered.candidates.weight, w)
    assert np.all(np.abs(w - 0.25) <= np.abs(plain.candidates.weight - 0.25) + 1e-15)
    code, _, err = run(capsys, "next-round", inst, "--labels", labels, "--weights", "predictive",
                       "--temper", 0.5, "--out", tmp_path / "bad.json", "--design-out", tmp_path / "bad-d.json")
    assert code == 2 and "temper must be a number >= 1" in err and not (tmp_path / "bad.json").exists()


def test_next_round_refuses_an_unknown_posterior(tmp_path):
    from pairdesign.pipeline import next_round

    with pytest.raises(OptionError, match="unknown posterior"):
        next_round(small_instance(), [], budget=2, posterior="flat")


# ----------------------------------------------------------------------------- the study
def test_study_rounds_with_predictive_weights_run_and_need_rounds():
    from pairdesign.simulate import DesignSpec, Labeler, Setting, make_world, run_design

    with pytest.raises(OptionError, match="pilot 'rounds'"):
        DesignSpec(name="x", method="greedy", weights="predictive", pilot="pilot")
    with pytest.raises(OptionError, match="posterior"):
        DesignSpec(name="x", method="greedy", weights="predictive", pilot="rounds", posterior="flat")
    with pytest.raises(OptionError, match="'temper' must be a number >= 1"):
        DesignSpec(name="x", method="greedy", weights="predictive", pilot="rounds", temper=0.5)
    with pytest.raises(OptionError, match="'select' applies to weights"):
        DesignSpec(name="x", method="greedy", weights="uniform", pilot="rounds", select=True)
    with pytest.raises(OptionError, match="'temper' applies to weights"):
        DesignSpec(name="x", method="greedy", weights="scores", pilot="rounds", temper=4.0)
    setting = Setting(dim=4, completions=4, train_prompts=40, test_prompts=20, reward_scale=3.0)
    world = make_world(setting, 0)
    for weights, posterior, temper in (("predictive", "fit", 1.0), ("predictive", "evidence", 1.0),
                                       ("expected", "evidence", 1.0), ("predictive", "evidence", 4.0)):
        spec = DesignSpec(name="p", method="greedy", weights=weights, pilot="rounds", posterior=posterior,
                          temper=temper, select=temper > 1)
        out = run_design(world, Labeler(world, 0), spec, 24, 0)
        assert len(out.j) == 24 and len({(a, b) for a, b in zip(out.j, out.k)}) == 24
        assert np.all(np.isfinite(out.theta))
