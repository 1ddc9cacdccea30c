"""Greedy under cProfile on a generated 105,000-pair instance: the DesignBuilder's share.

    python benchmarks/builder_profile.py none|caps|min

``none``: budget only; ``caps``: max_pairs_per_prompt = 2 and max_pairs_per_completion = 1;
``min``: max_pairs_per_prompt = 3 and min_pairs_per_prompt = 1 (coverage). Prints the wall time
of one profiled greedy run (after a warm-up run), the objective, the labels and the seconds spent
inside pairdesign/polytope.py (the builder). Run it side by side with another checkout by
PYTHONPATH.
"""
import cProfile, pstats, sys, time, io
import numpy as np
import pairdesign
caps = sys.argv[1] if len(sys.argv) > 1 else "none"
syn = pairdesign.synthetic_instance(1000, 15, 64, budget=1000, seed=3)
inst = syn.instance
if caps == "caps":
    from dataclasses import replace
    inst = replace(inst, max_pairs_per_prompt=2, max_pairs_per_completion=1)
if caps == "min":
    from dataclasses import replace
    inst = replace(inst, max_pairs_per_prompt=3, min_pairs_per_prompt=1)
inst.candidates
pairdesign.solve(inst, "greedy")  # warm
pr = cProfile.Profile()
t = time.perf_counter()
pr.enable()
r = pairdesign.solve(inst, "greedy")
pr.disable()
wall = time.perf_counter() - t
s = io.StringIO()
st = pstats.Stats(pr, stream=s).sort_stats("tottime")
st.print_stats(8)
builder = sum(v[2] for k, v in st.stats.items() if "polytope" in k[0])
print(f"{caps}: wall {wall:.3f}s, objective {r.objective:.6f}, labels {r.n_labels}, polytope tottime {builder:.3f}s")
print("\n".join(s.getvalue().splitlines()[:30]) if "-v" in sys.argv else "")
