"""Issue 17: what the evidence posterior looks like in rounds, and the safeguards screened.

    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_safe_rounds.py rounds SETTING MULT SEEDS
    OPENBLAS_NUM_THREADS=1 python benchmarks/downstream_safe_rounds.py screen SETTINGS SEEDS VARIANTS [FIRST_SEED]

``rounds``: per seed of SETTING (benchmarks/downstream_safe.toml) at budget MULT * d, the gap of
greedy D (uniform weights) and of predictive-eb rounds, and after each refit the evidence's prior
precision, the log evidence against theta = 0 (Laplace evidence + m log 2), and the mean and
spread of the predictive weights over the pool and their correlation with the true weights.

``screen``: the median gap of greedy D over the median gap of each variant of the rounds (> 1:
the variant is better) at 2d, 4d, 8d, 16d, and the geometric mean of the per-seed ratios.
Variants: ``pe`` (predictive-eb as built), ``mixA`` (``w = (1 - A/100) w_pred + (A/100) / 4``),
``labels`` / ``labels2`` (the same with ``a = min(1, d / m)`` / ``min(1, 2d / m)``, m the labels
so far), ``tempT`` (covariance times T, patched), ``jitE`` (weights 1/4 times 1 + E N(0, 1): no
information at all), ``t4`` / ``pe-sel`` / ``t4-sel`` (study specs: ``temper = 4``, ``select``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

import pairdesign.predictive as P
import pairdesign.simulate.designs as D
from pairdesign.fit import log_evidence
from pairdesign.simulate import load_config
from pairdesign.simulate.designs import run_design
from pairdesign.simulate.world import Labeler, make_world

CONFIG = "benchmarks/downstream_safe.toml"


def _specs():
    cfg = load_config(CONFIG)
    by_name = {s.name: s for s in cfg.designs}
    return cfg, by_name["greedy-D"], by_name["greedy-D-predictive-eb-rounds3"]


def rounds(setting_name: str, mult: float, n_seeds: int) -> None:
    cfg, uni, pe = _specs()
    setting = next(s for s in cfg.settings if s.name == setting_name)
    B = int(mult * setting.dim)
    log = []
    orig = D.fit_evidence

    def spy(Z, y, **kw):
        fit, ridge = orig(Z, y, **kw)
        log.append((len(y), ridge, fit))
        return fit, ridge

    D.fit_evidence = spy
    print("seed gap_uniform gap_pe ratio | true w mean, spread | per refit: labels ridge "
          "log-evidence-vs-zero  w mean  w spread  corr(w, true w)")
    for seed in range(n_seeds):
        w = make_world(setting, seed)
        lab = Labeler(w, seed)
        g_u = w.evaluate(run_design(w, lab, uni, B, seed).theta)["gap"]
        log.clear()
        g_p = w.evaluate(run_design(w, lab, pe, B, seed).theta)["gap"]
        c = w.instance(B).candidates
        phi = w.train.features
        tw = P.predictive_weights(phi, c.j, c.k, w.theta, np.zeros((setting.dim,) * 2))
        out = []
        for m, ridge, fit in log[:-1]:  # the last refit designs nothing
            ww = P.predictive_weights(phi, c.j, c.k, fit.theta, fit.covariance)
            out.append(f"{m:4d} {ridge:7.2f} {log_evidence(fit, ridge) + m * np.log(2):6.2f} "
                       f"{ww.mean():.3f} {ww.std():.3f} {np.corrcoef(ww, tw)[0, 1]:5.2f}")
        print(seed, f"{g_u:.4f} {g_p:.4f} {g_p / g_u:5.2f} | {tw.mean():.3f} {tw.std():.3f} |",
              " | ".join(out), flush=True)
    D.fit_evidence = orig


def _patched(name: str):
    orig = P.instance_posterior_weights

    def weights(inst, j, k):
        d, m = inst.features.shape[1], inst.labeled.shape[0]
        if name.startswith("temp"):
            return P.predictive_weights(P.centered_features(inst), j, k, inst.posterior_mean,
                                        float(name[4:]) * inst.posterior_covariance, kind=inst.weights)
        if name.startswith("jit"):
            rng = np.random.default_rng(m)
            return 0.25 * (1 + float(name[3:]) * rng.standard_normal(len(j)))
        w = orig(inst, j, k)
        a = {"labels": min(1.0, d / m), "labels2": min(1.0, 2 * d / m)}.get(name)
        if a is None:
            a = float(name[3:]) / 100 if name.startswith("mix") else 0.0
        return (1 - a) * w + a / 4

    return weights


def screen(settings: str, n_seeds: int, variants: str, first_seed: int = 0) -> None:
    cfg, uni, pe = _specs()
    specs = {"pe": pe, "t4": replace(pe, temper=4.0), "pe-sel": replace(pe, select=True),
             "t4-sel": replace(pe, temper=4.0, select=True)}
    names = variants.split(",")
    mults = [2, 4, 8, 16]
    seeds = range(first_seed, first_seed + n_seeds)
    orig = P.instance_posterior_weights
    for sname in settings.split(","):
        setting = next(s for s in cfg.settings if s.name == sname)
        gaps = {v: np.zeros((n_seeds, len(mults))) for v in ["uniform"] + names}
        t0 = time.time()
        for si, seed in enumerate(seeds):
            w = make_world(setting, seed)
            lab = Labeler(w, seed)
            for i, mult in enumerate(mults):
                B = mult * setting.dim
                gaps["uniform"][si, i] = w.evaluate(run_design(w, lab, uni, B, seed).theta)["gap"]
                for v in names:
                    P.instance_posterior_weights = orig if v in specs else _patched(v)
                    spec = specs.get(v, pe)
                    gaps[v][si, i] = w.evaluate(run_design(w, lab, spec, B, seed).theta)["gap"]
                P.instance_posterior_weights = orig
        print(f"{sname} (seeds {first_seed}-{first_seed + n_seeds - 1}, {time.time() - t0:.0f} s): "
              "median-gap ratio uniform / variant at 2d 4d 8d 16d | geometric mean per seed")
        for v in names:
            med = np.median(gaps["uniform"], 0) / np.median(gaps[v], 0)
            gm = np.exp(np.mean(np.log(gaps["uniform"] / gaps[v]), 0))
            print(f"  {v:8s}", " ".join(f"{x:5.2f}" for x in med), "|", " ".join(f"{x:5.2f}" for x in gm),
                  flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "rounds":
        rounds(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        screen(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
