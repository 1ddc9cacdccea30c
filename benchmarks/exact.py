"""Exact designs (issue 4): time to proven optimality against instance size, methods side by side.

    OPENBLAS_NUM_THREADS=1 nice python benchmarks/exact.py [--time-limit 60] [--quick]
                                     [--sizes PROMPTSxDxB ...] [--methods NAME ...]

Generated instances (``pairdesign.synthetic_instance``: K = 5 completions per prompt, so P = 10
pairs per prompt; ridge 1e-6; seed 0; criterion D); for each instance, one run of every method
in turn, in the same process:

- ``OA-highspy``  ``exact`` (outer approximation, master in highspy)
- ``OA-pyomo``    ``exact --solver pyomo:appsi_highs`` (the same loop, master through Pyomo)
- ``BnB``         ``exact --option algorithm=bnb`` (branch and bound, relaxation bounds)
- ``MISOCP-SCIP`` ``misocp`` (Sagnol-Harman MISOCP in cvxpy, SCIP)

Prints one row per run: status, seconds, final gap (log det), cuts, nodes (HiGHS nodes summed
over the masters; B&B nodes; n/a for SCIP, which cvxpy does not report), and where the time went
(from the ``stats:`` line of each method's log). Then the median speed-up over MISOCP-SCIP on the
instances that at least one method proved (time-limited runs counted at the time limit) and the
largest instances proven within the limit. There is no single-tree variant: HiGHS's callbacks
cannot add rows (see pairdesign/solvers/outer_approximation.py).

``--symmetric`` runs the instances of issue 16 instead, with branch and bound only, each case in a
fresh process, and with ``--before PATH`` also under the checkout at PATH (its ``pairdesign``), the
two runs of a case back to back:

- ``item t=T B=B``: the Bradley-Terry item model, one prompt whose T completions are the items,
  features the unit vectors of R^T (``rot``: a random rotation of them), ridge 1e-6;
- ``profile k=K``: full-profile paired comparisons, one prompt whose 2^K completions are the
  profiles {-1, 1}^K of K two-level attributes (d = K), ridge 1e-6;
- ``generated``: ``synthetic_instance`` as above (no symmetry: the cost of looking for it).

    OPENBLAS_NUM_THREADS=1 nice python benchmarks/exact.py --symmetric --before /path/to/old

``--node-relaxations`` times the node relaxations of branch and bound: the general solver against
the pair-space solver (pairdesign/solvers/node_bounds.py) on the same random boxes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matrices: BLAS threads only contend

import pairdesign  # noqa: E402

# (prompts, d, budget): P = 10 x prompts
SIZES = [(5, 4, 4), (5, 4, 16), (20, 4, 8), (20, 8, 8), (50, 4, 8), (50, 8, 16), (100, 4, 16),
         (200, 4, 4), (200, 8, 16), (20, 12, 24), (200, 12, 48)]
QUICK = [(5, 4, 4), (20, 4, 8), (20, 8, 8)]
METHODS = [("OA-highspy", "exact", {}), ("OA-pyomo", "exact", {"solver": "pyomo:appsi_highs"}),
           ("BnB", "exact", {"algorithm": "bnb"}), ("MISOCP-SCIP", "misocp", {})]


def stats(result) -> tuple[str, str, str]:
    """(cuts, nodes, where the time went) from the method's ``stats:`` log line."""
    for line in reversed(result.log):
        if "stats:" in line:
            fields = dict(re.findall(r"(\w+)=(\S+)", line.split("stats:", 1)[1]))
            cuts = fields.pop("cuts", "-") if "cuts" in fields else "-"
            nodes = fields.pop("nodes", "n/a")
            fields.pop("lp_iterations", None)
            return cuts, nodes, " ".join(f"{k} {v}" for k, v in fields.items())
    return "-", "n/a", ""


# issue 16: (kind, size, budget, time limit)
SYMMETRIC = ([("item", t, t, 120.0) for t in (6, 7, 8, 9, 10, 11, 12)] + [("item-rot", 8, 8, 120.0)]
             + [("item", t, 2 * t, 120.0) for t in (6, 7, 8, 9, 10, 11, 12)]
             + [("profile", k, b, 60.0) for k, b in ((3, 3), (3, 6), (4, 4), (4, 8))]
             + [("generated", (50, 8), 16, 60.0), ("generated", (20, 12), 24, 60.0)])
BEFORE_SKIPS: set = set()  # --before: cases left out for the old code (none since orbital branching)


def symmetric_instance(kind: str, size, budget: int):
    """An instance of the ``--symmetric`` suite (see the module docstring)."""
    import itertools

    import numpy as np

    if kind in ("item", "item-rot"):
        features = np.eye(size)
        if kind == "item-rot":
            Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(size, size)))
            features = features @ Q.T
        return pairdesign.Instance.from_arrays(features, np.zeros(size, dtype=int), budget=budget,
                                               ridge=1e-6)
    if kind == "profile":
        profiles = np.array(list(itertools.product([-1.0, 1.0], repeat=size)))
        return pairdesign.Instance.from_arrays(profiles, np.zeros(len(profiles), dtype=int),
                                               budget=budget, ridge=1e-6)
    prompts, d = size
    return pairdesign.synthetic_instance(prompts, 5, d, budget=budget, seed=0).instance


def run_one(case: str) -> None:
    """Solve one case of the suite (``kind:size:budget:limit``) and print one JSON line."""
    import json

    kind, size, budget, limit = case.split(":")
    size = tuple(int(v) for v in size.split("x")) if "x" in size else int(size)
    inst = symmetric_instance(kind, size, int(budget))
    start, cpu = time.perf_counter(), time.process_time()
    r = pairdesign.solve(inst, "exact", time_limit=float(limit), options={"algorithm": "bnb"})
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, nodes, went = stats(r)
    print(json.dumps({"status": r.status.value, "seconds": took, "cpu": cpu, "gap": r.gap, "nodes": nodes,
                      "objective": r.objective, "went": went, "P": len(inst.candidates),
                      "d": inst.dim}))


def run_symmetric(before: str | None) -> None:
    import json
    import subprocess
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    versions = [("after", here)] + ([("before", before)] if before else [])
    print("| instance | P | d | B | limit (s) | version | status | seconds | CPU s | gap | nodes | time went to |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for kind, size, budget, limit in SYMMETRIC:
        label = (f"{kind} t={size}" if kind.startswith("item") else f"profile k={size}"
                 if kind == "profile" else f"generated {size[0] * 10} pairs")
        key = f"{kind}:{'x'.join(map(str, size)) if isinstance(size, tuple) else size}:{budget}:{limit}"
        for version, path in versions:
            if version == "before" and (kind, size, budget) in BEFORE_SKIPS:
                continue
            env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS="1")
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", key], env=env,
                                 capture_output=True, text=True, timeout=10 * limit + 600)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if not lines:
                print(f"| {label} | | | {budget} | {limit:g} | {version} | error: "
                      f"{out.stderr.strip().splitlines()[-1:]} | | | | |", flush=True)
                continue
            r = json.loads(lines[-1])
            gap = "-" if r["gap"] is None else f"{r['gap']:.2g}"
            print(f"| {label} | {r['P']} | {r['d']} | {budget} | {limit:g} | {version} | {r['status']} | "
                  f"{r['seconds']:.2f} | {r['cpu']:.2f} | {gap} | {r['nodes']} | {r['went']} |", flush=True)


def compare_node_relaxations(boxes: int = 20) -> None:
    """``--node-relaxations``: the same random node boxes (two pairs forced in, two out, started
    from the root's relaxed design clipped to the box) solved by ``solve_relaxation`` and by the
    pair-space solver of branch and bound, to the node tolerance; seconds and the largest
    difference of the certified bounds."""
    import logging

    import numpy as np

    from pairdesign.polytope import linear_constraints
    from pairdesign.information import Criterion
    from pairdesign.solvers.base import Context
    from pairdesign.solvers.branch_and_bound import NODE_TOL
    from pairdesign.solvers.frank_wolfe import solve_relaxation
    from pairdesign.solvers.node_bounds import PairSpaceRelaxation

    rng = np.random.default_rng(1)
    print("| instance | P | d | boxes | solve_relaxation (s) | pair space (s) | ratio | max bound difference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, inst in [("item t=9, B=9", symmetric_instance("item", 9, 9)),
                        ("item t=12, B=24", symmetric_instance("item", 12, 24)),
                        ("generated d=8, B=16", symmetric_instance("generated", (50, 8), 16)),
                        ("generated d=12, B=24", symmetric_instance("generated", (20, 12), 24))]:
        crit = Criterion("D")
        lc = linear_constraints(inst)
        P = len(inst.candidates)
        ctx = Context.make(inst, crit, seed=None, logger=logging.getLogger("benchmark"))
        root = solve_relaxation(ctx, tol=1e-6)
        pair_space = PairSpaceRelaxation(inst, crit, lc)
        general_s = pair_s = diff = 0.0
        for _ in range(boxes):
            lo, hi = lc.lower.copy(), lc.upper.copy()
            idx = rng.choice(P, 4, replace=False)
            lo[idx[:2]], hi[idx[2:]] = 1.0, 0.0
            start = np.clip(root.n, lo, hi)
            t0 = time.perf_counter()
            a = solve_relaxation(ctx, tol=NODE_TOL, start=start, lower=lo, upper=hi, max_iterations=500)
            t1 = time.perf_counter()
            b = pair_space.solve(lo, hi, start, None, NODE_TOL)
            t2 = time.perf_counter()
            general_s, pair_s = general_s + t1 - t0, pair_s + t2 - t1
            diff = max(diff, abs(a.bound - b.bound))
        print(f"| {label} | {P} | {inst.dim} | {boxes} | {general_s:.2f} | {pair_s:.2f} | "
              f"{general_s / pair_s:.1f}x | {diff:.2g} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="three small instances")
    parser.add_argument("--sizes", nargs="+", metavar="PROMPTSxDxB",
                        help="instances to run instead, e.g. 20x8x8 (P = 10 x prompts)")
    parser.add_argument("--methods", nargs="+", choices=[name for name, _, _ in METHODS],
                        help="a subset of the methods (the speed-up needs MISOCP-SCIP)")
    parser.add_argument("--symmetric", action="store_true", help="the instances of issue 16 (B&B)")
    parser.add_argument("--before", metavar="PATH", help="with --symmetric: also run each case "
                        "under the pairdesign checkout at PATH")
    parser.add_argument("--node-relaxations", action="store_true",
                        help="node relaxations: solve_relaxation against the pair-space solver")
    parser.add_argument("--one", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node_relaxations:
        compare_node_relaxations()
        return
    if args.one:
        run_one(args.one)
        return
    if args.symmetric:
        run_symmetric(args.before)
        return
    methods = [m for m in METHODS if args.methods is None or m[0] in args.methods]
    sizes = ([tuple(int(v) for v in s.split("x")) for s in args.sizes] if args.sizes
             else QUICK if args.quick else SIZES)
    limit = args.time_limit
    print(f"| P | d | B | method | status | seconds | gap | cuts | nodes | time went to |")
    print("| ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |")
    speedups: dict[str, list[float]] = {name: [] for name, _, _ in METHODS[:-1]}
    proven_sizes: dict[str, list[tuple[int, int, int, float]]] = {name: [] for name, _, _ in methods}
    for n, d, B in sizes:
        inst = pairdesign.synthetic_instance(n, 5, d, budget=B, seed=0).instance
        P = len(inst.candidates)
        seconds: dict[str, float] = {}
        for name, method, options in methods:
            start = time.perf_counter()
            try:
                r = pairdesign.solve(inst, method, time_limit=limit, options=options)
            except pairdesign.SolverError as exc:
                print(f"| {P} | {d} | {B} | {name} | error: {exc} | | | | | |", flush=True)
                seconds[name] = limit
                continue
            except pairdesign.OptionError as exc:  # a time limit the method cannot honour
                print(f"| {P} | {d} | {B} | {name} | refused: {exc} | | | | | |", flush=True)
                seconds[name] = limit
                continue
            took = time.perf_counter() - start
            proven = r.status is pairdesign.SolutionStatus.optimal
            # SCIP may finish ("optimal" to its own tolerances) where pairdesign's check of its
            # optimum against the recomputed log det says only "feasible": for the speed-up its
            # time counts all the same (the fair choice for SCIP)
            finished = proven or (method == "misocp"
                                  and r.termination is pairdesign.TerminationCondition.converged)
            seconds[name] = took if finished else limit
            if proven:
                proven_sizes[name].append((P, d, B, took))
            cuts, nodes, went = stats(r)
            gap = "-" if r.gap is None else f"{r.gap:.2g}"
            print(f"| {P} | {d} | {B} | {name} | {r.status.value} | {took:.2f} | {gap} | {cuts} | "
                  f"{nodes} | {went} |", flush=True)
        if "MISOCP-SCIP" in seconds and any(s < limit for s in seconds.values()):
            for name in speedups:
                if name in seconds:
                    speedups[name].append(seconds["MISOCP-SCIP"] / seconds[name])
    print()
    print(f"Median speed-up over MISOCP-SCIP (instances at least one method proved; a run that did "
          f"not prove optimality counted as {limit:g} s):")
    for name, values in speedups.items():
        if values:
            print(f"- {name}: {statistics.median(values):.2f}x over {len(values)} instances "
                  f"(per instance: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"Largest instances proven optimal within {limit:g} s (per d, the largest P, then B):")
    for name, sizes in proven_sizes.items():
        best = {}
        for P, d, B, took in sizes:
            if d not in best or (P, B) > best[d][:2]:
                best[d] = (P, B, took)
        found = "; ".join(f"d = {d}: P = {P}, B = {B} ({took:.1f} s)" for d, (P, B, took) in sorted(best.items()))
        print(f"- {name}: {len(sizes)} proven; {found or 'none'}")


if __name__ == "__main__":
    main()
