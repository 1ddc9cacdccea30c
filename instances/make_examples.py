"""Re-create the example instances in this folder: ``python instances/make_examples.py``."""

from pathlib import Path

import numpy as np

from pairdesign import Group, Instance, save_instance, synthetic_instance

HERE = Path(__file__).parent


def rounded(inst: Instance, decimals: int = 3) -> Instance:
    """The same instance with features and scores rounded, for readable JSON."""
    from dataclasses import replace
    return replace(inst, features=np.round(inst.features, decimals),
                   scores=None if inst.scores is None else np.round(inst.scores, decimals))


def main() -> None:
    # 8 prompts x 5 completions, d = 4: the README's first example
    small = synthetic_instance(8, 5, 4, budget=10, seed=1, name="small").instance
    save_instance(rounded(small), HERE / "small.json")

    # every kind of constraint: explicit pairs with costs, caps, fixed in/out, labeled, groups
    base = rounded(synthetic_instance(6, 4, 3, budget=9, seed=2, name="constrained").instance)
    rows = base.prompt_offsets
    pairs, costs = [], []
    for i in range(base.n_prompts):
        for a in range(4):
            for b in range(a + 1, 4):
                if (a, b) != (2, 3):
                    pairs.append((rows[i] + a, rows[i] + b))
                    costs.append(2.0 if i % 3 == 0 else 1.0)
    inst = Instance(
        prompt_ids=base.prompt_ids, prompt_offsets=base.prompt_offsets,
        completion_ids=base.completion_ids, features=base.features, scores=base.scores,
        budget=9, name="constrained", ridge=0.01,
        max_pairs_per_prompt=3, max_pairs_per_completion=2,
        prompt_max_pairs=np.array([1, np.inf, np.inf, np.inf, np.inf, np.inf]),
        pairs=np.array(pairs), pair_costs=np.array(costs),
        fixed_in=np.array([(rows[1], rows[1] + 1)]),
        fixed_out=np.array([(rows[2], rows[2] + 3)]),
        labeled=np.array([(rows[3], rows[3] + 2)]), labeled_counts=np.array([2]),
        groups=(Group("first-half", np.arange(3), 4.0),),
    )
    save_instance(inst, HERE / "constrained.json")

    # a larger instance in the binary form: 400 prompts x 8 completions, d = 16
    medium = synthetic_instance(400, 8, 16, budget=64, seed=3, decay=1.5, name="medium").instance
    save_instance(medium, HERE / "medium.npz")


if __name__ == "__main__":
    main()
