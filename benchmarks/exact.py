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
METHODS = [("OA-highspy", "exact", {"algorithm": "oa"}), ("OA-pyomo", "exact", {"solver": "pyomo:appsi_highs"}),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="three small instances")
    parser.add_argument("--sizes", nargs="+", metavar="PROMPTSxDxB",
                        help="instances to run instead, e.g. 20x8x8 (P = 10 x prompts)")
    parser.add_argument("--methods", nargs="+", choices=[name for name, _, _ in METHODS],
                        help="a subset of the methods (the speed-up needs MISOCP-SCIP)")
    args = parser.parse_args()
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
