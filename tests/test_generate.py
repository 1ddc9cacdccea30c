"""The synthetic generator: seeded, anisotropic, scores from a hidden theta."""

import numpy as np
import pytest

from pairdesign import OptionError, synthetic_instance
from pairdesign.instance import instances_equal


def test_same_seed_same_instance_and_other_seed_differs():
    a = synthetic_instance(20, 4, 5, seed=1)
    b = synthetic_instance(20, 4, 5, seed=1)
    c = synthetic_instance(20, 4, 5, seed=2)
    assert instances_equal(a.instance, b.instance) and np.array_equal(a.theta, b.theta)
    assert not instances_equal(a.instance, c.instance)


def test_spectrum_decays_and_prompts_share_a_component():
    syn = synthetic_instance(4000, 6, 6, decay=2.0, shared=0.5, seed=0)
    inst = syn.instance
    evals = np.sort(np.linalg.eigvalsh(np.cov(inst.features.T)))[::-1]
    expected = np.arange(1, 7) ** -2.0
    expected *= 6 / expected.sum()
    assert np.allclose(evals, expected, rtol=0.1)
    # half the variance is shared within a prompt: within-prompt differences carry the other half
    z = inst.features[inst.candidates.j] - inst.features[inst.candidates.k]
    assert np.trace(np.cov(z.T)) == pytest.approx(2 * 0.5 * 6, rel=0.05)


def test_scores_come_from_theta_with_the_stated_scale_and_noise():
    syn = synthetic_instance(3000, 5, 4, reward_scale=2.0, score_noise=0.3, seed=3)
    inst = syn.instance
    reward = inst.features @ syn.theta
    assert np.std(inst.scores - reward) == pytest.approx(0.3, rel=0.05)
    gaps = reward[inst.candidates.j] - reward[inst.candidates.k]
    assert np.std(gaps) == pytest.approx(2.0, rel=0.05)
    assert synthetic_instance(3, 3, 2, scores=False).instance.scores is None


@pytest.mark.parametrize("kwargs", [dict(n_prompts=0), dict(n_completions=1), dict(dim=0),
                                    dict(shared=1.0), dict(decay=-1.0)])
def test_bad_generator_parameters(kwargs):
    args = dict(n_prompts=3, n_completions=3, dim=2) | kwargs
    with pytest.raises(OptionError):
        synthetic_instance(args.pop("n_prompts"), args.pop("n_completions"), args.pop("dim"), **args)
