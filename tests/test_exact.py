"""Exact designs by outer approximation: against brute-force enumeration, honest statuses."""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import pairdesign
from helpers import check_feasible, has_feasible_design, random_instance
from pairdesign import Criterion, SolutionStatus, TerminationCondition, objective, solve
from pairdesign.polytope import violations


def enumerable(inst) -> bool:
    """Small enough for brute force (at most 4096 designs) and with a feasible design."""
    if np.prod(inst.candidates.upper + 1.0) > 4096:
        return False
    return has_feasible_design(inst)


def brute_force(inst, crit, budget=None):
    cand = inst.candidates
    best = -np.inf
    ranges = [range(int(lo), int(hi) + 1) for lo, hi in zip(cand.lower, cand.upper)]
    for n in itertools.product(*ranges):
        n = np.asarray(n)
        if not violations(inst, n, budget):
            best = max(best, objective(inst, n, crit))
    return best


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]))
@example(613704629, "A")  # the relaxation stalled for 60 s here (A, completion caps 1): incumbent all-zero
def test_exact_matches_brute_force(seed, criterion):
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)
    if not enumerable(inst):
        return  # too many designs to enumerate, or none is feasible
    crit = Criterion.make(criterion, inst)
    result = solve(inst, "exact", criterion, time_limit=60, options={"algorithm": "oa"})
    best = brute_force(inst, crit)
    check_feasible(inst, result.counts, inst.budget)
    assert result.status is SolutionStatus.optimal
    scale = max(1.0, abs(best))
    assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
    assert result.bound >= best - 1e-7 * scale
    assert result.gap <= 1e-5 * scale


def test_exact_beats_or_equals_greedy_and_respects_the_relaxation():
    inst = pairdesign.synthetic_instance(8, 4, 3, budget=6, seed=2).instance
    exact = solve(inst, "exact")
    assert exact.status is SolutionStatus.optimal
    assert exact.objective >= solve(inst, "greedy").objective - 1e-12
    assert exact.objective <= solve(inst, "relax").bound + 1e-9


@pytest.mark.parametrize("algorithm", ["oa", "bnb"])
def test_time_limit_returns_incumbent_bound_and_gap(algorithm):
    inst = pairdesign.synthetic_instance(60, 5, 6, budget=12, seed=0, ridge=1e-3).instance
    result = solve(inst, "exact", time_limit=0.5, options={"algorithm": algorithm})
    check_feasible(inst, result.counts, inst.budget)
    assert result.termination is TerminationCondition.time_limit
    assert result.status is SolutionStatus.feasible
    relaxed = solve(inst, "relax", options={"tol": 1e-9})
    assert result.bound is not None and result.bound >= result.objective
    # never weaker than the relaxation it starts from (solved there to a loss of 1e-6), when the
    # root relaxation finished inside the limit (on a loaded machine it may not)
    if not any("relax: time_limit" in line for line in result.log):
        assert result.bound <= relaxed.objective - inst.dim * np.log1p(-1e-6) + 1e-9
    assert result.gap > 0
    if algorithm == "bnb":
        assert any("branch and bound" in line for line in result.log)


@pytest.mark.parametrize("file_format", ["lp", "mps"])
def test_exported_master_is_a_valid_milp_relaxation(tmp_path, capsys, file_format):
    """`pairdesign export` writes the master with two cuts: HiGHS reads it back, and its optimum
    bounds the exact optimum from above, while the Pyomo model solved by appsi_highs agrees."""
    from pairdesign.cli import main
    from pairdesign.backends.highs import new_highs

    out = tmp_path / f"master.{file_format}"
    assert main(["-q", "export", "instances/constrained.json", "--format", file_format,
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # nothing half-written
    inst = pairdesign.load_instance("instances/constrained.json")
    h = new_highs()
    h.readModel(str(out))
    assert h.getNumCol() == len(inst.candidates) + 1
    h.run()
    import highspy
    assert h.getLp().sense_ == highspy.ObjSense.kMaximize
    master = h.getInfo().objective_function_value
    exact = solve(inst, "exact")
    relaxed = solve(inst, "relax")
    # the master with two cuts bounds the integer optimum; its cut at the relaxation keeps it near
    # the relaxation's bound (within the relaxation's own tolerance)
    assert exact.objective - 1e-7 <= master <= relaxed.bound + 1e-3


def test_pyomo_master_solved_by_appsi_highs_bounds_the_optimum():
    import pyomo.environ as pyo
    from pairdesign.formulations.integer import add_cut, integer_model

    inst = pairdesign.load_instance("instances/constrained.json")
    crit = Criterion.make("D", inst)
    model = integer_model(inst, crit)
    exact = solve(inst, "exact")
    add_cut(model, inst, crit, exact.counts.astype(float))
    pyo.SolverFactory("appsi_highs").solve(model)
    n = np.array([pyo.value(model.n[p]) for p in range(len(inst.candidates))])
    assert not violations(inst, np.round(n))
    assert pyo.value(model.eta) >= exact.objective - 1e-7


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]))
def test_outer_approximation_through_pyomo_agrees_with_highspy(seed, criterion):
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)
    if not has_feasible_design(inst):
        return
    direct = solve(inst, "exact", criterion, time_limit=60, options={"algorithm": "oa"})
    pyomo = solve(inst, "exact", criterion, time_limit=60, options={"solver": "pyomo:appsi_highs"})
    assert direct.status is pyomo.status is SolutionStatus.optimal
    assert pyomo.solver == "pyomo:appsi_highs" and direct.solver == "highspy"
    assert pyomo.objective == pytest.approx(direct.objective, rel=1e-6, abs=1e-6)


def test_cli_exact_with_a_pyomo_solver(tmp_path):
    import json
    from pairdesign.cli import main
    out = tmp_path / "d.json"
    assert main(["-q", "solve", "instances/constrained.json", "--method", "exact",
                 "--solver", "pyomo:appsi_highs", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "optimal" and doc["solver"] == "pyomo:appsi_highs"
    assert doc["bound"] >= doc["objective"] and doc["gap"] <= 3 * 1e-6 * 1.01
    assert main(["-q", "solve", "instances/constrained.json", "--method", "exact",
                 "--solver", "pyomo:no_such_solver", "--out", str(out)]) == 2


def check_misocp(seed, time_limit):
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)
    if not has_feasible_design(inst):
        return
    try:
        misocp = solve(inst, "misocp", time_limit=time_limit)
    except pairdesign.SolverError:
        return  # SCIP itself failed (seen on rare random instances): a clear error, not ours to check
    oa = solve(inst, "exact", time_limit=60, options={"algorithm": "oa"})
    check_feasible(inst, misocp.counts, inst.budget)
    assert misocp.solver.startswith("cvxpy:SCIP")
    if misocp.termination is TerminationCondition.time_limit:  # SCIP ran out of time
        assert misocp.status is SolutionStatus.feasible and "optimal (" not in misocp.solver
        assert misocp.bound >= oa.objective - 1e-7
        return
    # SCIP finished: its design is optimal even where its conic tolerances leave its own optimum
    # too far from the recomputed log det for pairdesign to say "optimal"
    assert misocp.bound >= misocp.objective - 1e-9
    assert (misocp.status is SolutionStatus.optimal) == (misocp.gap <= -inst.dim * np.log1p(-1e-6))
    assert misocp.objective == pytest.approx(oa.objective, rel=1e-6, abs=1e-6)
    if np.prod(inst.candidates.upper + 1.0) <= 4096:
        best = brute_force(inst, Criterion.make("D", inst))
        assert misocp.objective == pytest.approx(best, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_misocp_in_scip_agrees_with_outer_approximation_and_brute_force(seed):
    check_misocp(seed, time_limit=60)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_misocp_agrees_on_many_random_instances(seed):
    check_misocp(seed, time_limit=30)


def test_misocp_is_for_D_only():
    from pairdesign import OptionError
    inst = pairdesign.load_instance("instances/small.json")
    with pytest.raises(OptionError, match="D criterion"):
        solve(inst, "misocp", "A")


# --- branch and bound (exact --option algorithm=bnb) ---------------------------------------------

KINDS = ["budget", "costs", "per-prompt", "per-completion", "repeats", "groups", "fixed-in"]


def instance_with(seed: int, kind: str):
    """A small random instance whose only constraints beyond the budget are of one kind."""
    base = random_instance(seed, max_prompts=3, max_k=4, max_d=3, constraints=False)
    cand = base.candidates
    pairs = np.c_[cand.j, cand.k]
    rng = np.random.default_rng(seed)
    overrides = {
        "budget": {},
        "costs": {"pairs": pairs, "pair_costs": rng.choice([0.5, 1.0, 2.0], size=len(pairs))},
        "per-prompt": {"max_pairs_per_prompt": int(rng.integers(0, 3))},
        "per-completion": {"max_pairs_per_completion": int(rng.integers(1, 3))},
        "repeats": {"max_labels_per_pair": 2},
        "groups": {"groups": (pairdesign.Group("g0", np.array([0]), float(rng.integers(0, 3))),)},
        "fixed-in": {"fixed_in": pairs[:1]},
    }[kind]
    return random_instance(seed, max_prompts=3, max_k=4, max_d=3, constraints=False, **overrides)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]), st.sampled_from(KINDS))
def test_branch_and_bound_matches_brute_force(seed, criterion, kind):
    inst = instance_with(seed, kind)
    if not enumerable(inst):
        return  # too many designs to enumerate, or none is feasible
    crit = Criterion.make(criterion, inst)
    result = solve(inst, "exact", criterion, time_limit=60, options={"algorithm": "bnb"})
    best = brute_force(inst, crit)
    check_feasible(inst, result.counts, inst.budget)
    assert result.status is SolutionStatus.optimal and result.solver == "branch-and-bound"
    scale = max(1.0, abs(best))
    assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
    assert result.bound >= best - 1e-7 * scale
    assert result.gap <= 1e-5 * scale


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]), st.sampled_from(KINDS))
def test_outer_approximation_matches_brute_force_for_each_constraint_kind(seed, criterion, kind):
    inst = instance_with(seed, kind)
    if not enumerable(inst):
        return  # too many designs to enumerate, or none is feasible
    result = solve(inst, "exact", criterion, time_limit=60, options={"algorithm": "oa"})
    assert result.status is SolutionStatus.optimal
    assert result.objective == pytest.approx(brute_force(inst, Criterion.make(criterion, inst)),
                                             rel=1e-6, abs=1e-6)


def test_branch_and_bound_agrees_with_outer_approximation_on_a_generated_instance():
    inst = pairdesign.synthetic_instance(8, 4, 3, budget=6, seed=2).instance
    oa = solve(inst, "exact", options={"algorithm": "oa"})
    bnb = solve(inst, "exact", options={"algorithm": "bnb"})
    assert oa.status is bnb.status is SolutionStatus.optimal
    assert bnb.objective == pytest.approx(oa.objective, rel=1e-9, abs=1e-9)


def test_relaxation_with_bounds_respects_them_and_bounds_the_box():
    from pairdesign.solvers.base import Context
    from pairdesign.solvers.frank_wolfe import solve_relaxation
    import logging

    inst = pairdesign.synthetic_instance(8, 4, 3, budget=6, seed=2).instance
    crit = Criterion.make("D", inst)
    ctx = Context.make(inst, crit, seed=0, logger=logging.getLogger("test"))
    P = len(inst.candidates)
    lower, upper = np.zeros(P), np.ones(P)
    free = solve_relaxation(ctx, tol=1e-9)
    top = int(np.argmax(free.n))
    upper[top] = 0.0  # forbid the pair the free relaxation likes most
    lower[int(np.argsort(free.n)[0])] = 1.0  # and force in the one it likes least
    boxed = solve_relaxation(ctx, tol=1e-9, lower=lower, upper=upper)
    assert np.all(boxed.n >= lower - 1e-12) and np.all(boxed.n <= upper + 1e-12)
    assert boxed.bound <= free.bound + 1e-9
    # every integer design in the box is below the box's bound
    best = solve(inst, "exact").objective
    assert boxed.bound >= boxed.value - 1e-12
    assert free.bound >= best - 1e-9
    # stop_below: the run stops as soon as the certificate is that low
    first = solve_relaxation(ctx, tol=1e-12, max_iterations=1)
    stopped = solve_relaxation(ctx, tol=1e-12, stop_below=first.bound)
    assert stopped.termination is TerminationCondition.completed and stopped.iterations == 1
    later = solve_relaxation(ctx, tol=1e-12, stop_below=0.5 * (first.bound + free.bound))
    assert later.bound <= 0.5 * (first.bound + free.bound) and later.bound >= free.value - 1e-9


@pytest.mark.parametrize("seed, criterion", [(2325, "L"), (578, "A"), (616, "L"), (1168, "D")])
def test_branch_and_bound_keeps_designs_at_an_integral_branching_pair(seed, criterion):
    # regression: at an integral relaxed design the cut was taken at x_p = 0.999999999999 instead
    # of 1, so one child box lost every design with n_p = 1 and "optimal" was claimed wrongly
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)
    assert enumerable(inst)  # the regression seeds are small and feasible
    best = brute_force(inst, Criterion.make(criterion, inst))
    for method, options in (("exact", {"algorithm": "bnb"}), ("auto", None)):
        result = solve(inst, method, criterion, seed=0, options=options)
        assert result.bound >= best - 1e-7 * max(1.0, abs(best))
        if result.status is SolutionStatus.optimal:
            assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "A", "L"]))
def test_branch_and_bound_matches_brute_force_with_every_constraint(seed, criterion):
    inst = random_instance(seed, max_prompts=3, max_k=4, max_d=3)  # every kind at once, maybe
    if not enumerable(inst):
        return  # too many designs to enumerate, or none is feasible
    best = brute_force(inst, Criterion.make(criterion, inst))
    result = solve(inst, "exact", criterion, time_limit=60, options={"algorithm": "bnb"})
    check_feasible(inst, result.counts, inst.budget)
    assert result.bound >= best - 1e-7 * max(1.0, abs(best))
    assert result.status is SolutionStatus.optimal
    assert result.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
