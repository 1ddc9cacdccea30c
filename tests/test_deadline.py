"""One deadline everywhere: limits honoured or refused up front, interrupts keep the work,
bounds are bounds, runs without a limit do not depend on the clock (#14, #12 item 5)."""

import json
import time

import numpy as np
import pytest

import pairdesign
from pairdesign import InfeasibleError, OptionError, SolutionStatus, TerminationCondition, solve
from pairdesign.cli import main
from pairdesign.deadline import Deadline

from helpers import check_feasible


def small(seed=0, prompts=12, k=5, d=4, budget=10):
    return pairdesign.synthetic_instance(prompts, k, d, budget=budget, seed=seed).instance


def interrupt_after(calls: int):
    """A deadline check that raises KeyboardInterrupt (as Ctrl-C does) at its ``calls``-th call."""
    seen = {"n": 0}

    def check() -> None:
        seen["n"] += 1
        if seen["n"] == calls:
            raise KeyboardInterrupt

    return Deadline.after(None, check=check), seen


# --------------------------------------------------------------------------- the Deadline object
def test_child_deadline_is_never_later_than_its_parent():
    parent = Deadline.after(10.0)
    assert parent.child(seconds=100.0).at == parent.at
    assert parent.child(share=0.5).at < parent.at
    assert Deadline.never().child(seconds=5.0).limited
    assert not Deadline.never().child(share=0.5).limited
    past = Deadline(time.monotonic() - 1.0)
    assert past.expired() and past.remaining() == 0.0
    assert past.solver_seconds() > 0  # a passed deadline is not handed to a solver as "no limit"


@pytest.mark.parametrize("method", ["greedy", "round", "local-search", "relax", "exact", "auto", "random"])
def test_a_passed_deadline_still_returns_a_feasible_design(method):
    inst = small()
    result = solve(inst, method, seed=0, deadline=Deadline(time.monotonic() - 1.0))
    if result.fractional:  # the relaxation's real weights keep every row (rounding them may not)
        assert not pairdesign.polytope.linear_constraints(inst).violations(result.counts, integral=False)
    else:
        check_feasible(inst, result.counts, inst.budget)
    assert result.status is not SolutionStatus.optimal or result.gap <= 1e-4
    if result.bound is not None:
        assert result.bound >= result.objective - 1e-9


def test_outer_approximation_after_the_deadline_skips_its_symmetry_search():
    """The OA master's symmetry search has no limit of its own (about 1 s on 90,000 pairs, d = 32,
    which broke --time-limit 2): once the deadline has passed it is not started."""
    inst = small(prompts=30, k=6, d=5, budget=20)
    result = solve(inst, "exact", options={"algorithm": "oa"}, deadline=Deadline(time.monotonic() - 1.0))
    check_feasible(inst, result.counts, inst.budget)
    stats = [line for line in result.log if "exact: stats:" in line]
    assert stats and "symmetry=" not in stats[0]
    within = solve(inst, "exact", options={"algorithm": "oa", "max_iterations": 1})  # in time: searched
    assert "symmetry=" in [line for line in within.log if "exact: stats:" in line][0]


def test_exact_greedy_start_honours_the_deadline():
    inst = small(prompts=60, k=6, d=6, budget=30)
    result = solve(inst, "exact", deadline=Deadline(time.monotonic() - 1.0))
    assert result.termination is TerminationCondition.time_limit
    assert result.status is SolutionStatus.feasible
    # the greedy start stopped at once: fewer labels than greedy's full design
    assert result.counts.sum() < solve(inst, "greedy").counts.sum()


# --------------------------------------------------------------------------- interrupts
@pytest.mark.parametrize("method,calls", [("round", 3), ("auto", 3), ("exact", 40), ("relax", 3),
                                          ("greedy", 6)])
def test_an_interrupt_keeps_the_best_design_and_the_bound_proved(method, calls):
    inst = small(prompts=30, k=6, d=5, budget=20)
    deadline, seen = interrupt_after(calls)
    result = solve(inst, method, seed=0, deadline=deadline)
    assert seen["n"] >= calls
    assert result.termination is TerminationCondition.interrupted
    assert not result.fractional
    check_feasible(inst, result.counts, inst.budget)
    assert result.counts.sum() > 0
    if method in ("round", "auto", "exact", "relax"):  # each had proved a bound before the interrupt
        assert result.bound is not None and result.bound >= result.objective
        # a valid bound lies above the integer optimum (proved by exact)
        assert result.bound >= solve(inst, "exact").objective - 1e-9


def test_interrupted_oa_keeps_its_incumbent():
    inst = small(prompts=20, k=5, d=4, budget=12)
    deadline, _ = interrupt_after(5)
    result = solve(inst, "exact", options={"algorithm": "oa"}, deadline=deadline)
    assert result.termination is TerminationCondition.interrupted
    check_feasible(inst, result.counts, inst.budget)
    assert result.bound is not None and result.bound >= result.objective


def test_interrupt_of_a_baseline_returns_the_pairs_added_so_far():
    inst = small()
    deadline, _ = interrupt_after(1)
    result = solve(inst, "random", seed=0, deadline=deadline)
    assert result.termination is TerminationCondition.interrupted
    assert result.bound is None
    check_feasible(inst, result.counts, inst.budget)


# --------------------------------------------------------------------------- limits refused up front
def test_misocp_refuses_a_time_limit_its_build_cannot_honour():
    inst = small(prompts=60, k=8, d=8, budget=16)  # 1,680 pairs x d = 8
    with pytest.raises(OptionError, match="cannot honour a time limit.*cannot be interrupted"):
        solve(inst, "misocp", time_limit=2)


def test_relax_through_cvxpy_refuses_a_solver_without_a_time_limit():
    inst = small()
    with pytest.raises(OptionError, match="cannot honour a time limit"):
        solve(inst, "relax", time_limit=2, options={"solver": "cvxpy:OSQP"})


def test_relax_through_cvxpy_honours_a_time_limit_on_a_small_instance():
    inst = small()
    result = solve(inst, "relax", time_limit=30, options={"solver": "cvxpy"})
    assert result.bound >= result.objective
    assert result.termination in (TerminationCondition.completed, TerminationCondition.inaccurate)


def test_exact_through_a_pyomo_solver_without_time_limit_refuses_one():
    from pairdesign.problem import Problem
    from pairdesign.solvers.exact import Exact

    problem = Problem.build(small())
    # cbc is reached through Pyomo's legacy interface, which takes no time limit
    reason = Exact.refuse_time_limit(problem, Exact.Options(solver="pyomo:cbc"), 5.0)
    assert reason is not None and "takes no time limit" in reason
    assert Exact.refuse_time_limit(problem, Exact.Options(solver="pyomo:appsi_highs"), 5.0) is None
    assert Exact.refuse_time_limit(problem, Exact.Options(), 5.0) is None


# --------------------------------------------------------------------------- bounds and statuses
def test_misocp_bound_is_a_dual_bound_never_below_its_objective():
    inst = small(prompts=6, k=4, d=3, budget=5)
    misocp = solve(inst, "misocp")
    exact = solve(inst, "exact")
    assert misocp.bound >= misocp.objective
    assert misocp.bound >= exact.objective - 1e-9  # a bound on the optimum
    assert misocp.status is not SolutionStatus.optimal or misocp.gap <= -inst.dim * np.log1p(-1e-6)


def test_misocp_on_an_instance_without_candidate_pairs():
    inst = pairdesign.Instance.from_arrays(np.eye(3), [0, 1, 2], budget=2)  # one completion per prompt
    result = solve(inst, "misocp")
    assert result.pairs == () and result.status is SolutionStatus.optimal


def test_auto_without_a_time_limit_reproduces():
    inst = small(prompts=40, k=6, d=6, budget=12)
    a, b = (solve(inst, "auto", seed=3) for _ in range(2))
    assert np.array_equal(a.counts, b.counts)
    assert (a.status, a.bound, a.termination) == (b.status, b.bound, b.termination)
    assert any("at most 2000 nodes" in line for line in a.log) or a.status is SolutionStatus.optimal


def test_a_fractional_budget_with_unit_costs_is_floored():
    inst = small()
    result = solve(inst, "greedy", budget=2.5)
    assert result.budget == 2 and result.counts.sum() == 2


# --------------------------------------------------------------------------- the CLI: one line
@pytest.mark.parametrize("args,message", [
    (["--method", "round", "--option", "relax_tol=abc"], "option 'relax_tol' of method 'round' must be float or none, got 'abc'"),
    (["--method", "first-k", "--option", "k=two"], "option 'k' of method 'first-k' must be int"),
    (["--method", "exact", "--solver", "pyomo:nonexistent"], "Pyomo solver 'nonexistent' is not available here"),
])
def test_cli_bad_solver_requests_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "d.json"
    code = main(["solve", "instances/small.json", "--out", str(out)] + args)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.strip().splitlines()[-1] == f"pairdesign: error: {message}" or message in err
    assert "Traceback" not in err


def test_cli_option_text_parsed_by_declared_type(tmp_path):
    out = tmp_path / "d.json"
    assert main(["-q", "solve", "instances/small.json", "--out", str(out), "--method", "round",
                 "--option", "relax_tol=1e-3", "--option", "local_search=false"]) == 0
    assert json.loads(out.read_text())["method"] == "round"



@pytest.mark.parametrize("criterion", ["A", "L", "D"])
def test_no_optimal_claim_below_float_noise(criterion):
    """At ridge 1e-12 with a budget below d, M is nearly singular: the criterion's value carries
    a rounding error (eps cond(M)) far above a gap of 1e-6, so 'optimal' is withdrawn, with the
    condition number in the log; a well-conditioned design keeps its claim."""
    from pairdesign.solve import _check_accuracy
    from pairdesign.solvers.base import Context, Outcome

    for ridge, expected in ((1e-12, SolutionStatus.feasible), (1.0, SolutionStatus.optimal)):
        inst = pairdesign.synthetic_instance(6, 4, 6, budget=4, seed=1, ridge=ridge).instance
        ctx = Context.make(inst, criterion)
        counts = solve(inst, "greedy", criterion).counts
        outcome = Outcome(counts, TerminationCondition.converged, SolutionStatus.optimal)
        _check_accuracy(ctx, outcome, 1e-6)
        assert outcome.status is expected
        assert any("condition number" in line for line in ctx.log) == (expected is SolutionStatus.feasible)


@pytest.mark.parametrize("method", ["exact", "relax"])
def test_solve_withdraws_optimal_below_float_noise_end_to_end(method):
    """Through the front door: one prompt of 3 completions in d = 4 at ridge 1e-12 (M nearly
    singular, A's value about -2e12): the method converges, yet solve says feasible, naming
    the condition number; at ridge 1 the same run is optimal."""
    features = np.random.default_rng(0).normal(size=(3, 4))
    for ridge, expected in ((1e-12, SolutionStatus.feasible), (1.0, SolutionStatus.optimal)):
        inst = pairdesign.Instance.from_arrays(features, [0, 0, 0], budget=2, ridge=ridge)
        result = solve(inst, method, "A")
        assert result.termination is TerminationCondition.converged
        assert result.status is expected
        assert any("condition number" in line for line in result.log) == (ridge < 1)
