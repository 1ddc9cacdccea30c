"""The ``pairdesign`` command: ``solve``, ``info``, ``export``, ``generate`` and ``simulate``.

Errors a user can cause print one line (``pairdesign: error: ...``) and exit with status 2;
outputs are written atomically, so a failed run leaves no partial file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from .errors import PairdesignError

log = logging.getLogger("pairdesign")


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except ValueError:
        return key.replace("-", "_"), value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise PairdesignError(f"{out}: unknown output type {out.suffix!r}; use {' or '.join(suffixes)}")
    if not out.parent.is_dir() and str(out.parent):
        raise PairdesignError(f"{out}: the folder {out.parent} does not exist")
    return out


def cmd_solve(args: argparse.Namespace) -> int:
    from .instance import load_instance
    from .solve import solve

    out = _check_output(args.out, (".json", ".csv"))
    instance = load_instance(args.instance)
    options = dict(args.option or [])
    if args.solver is not None:
        options["solver"] = args.solver
    result = solve(instance, method=args.method, criterion=args.criterion, budget=args.budget,
                   time_limit=args.time_limit, seed=args.seed, options=options, certify=args.certify)
    result.save(out)
    print(result.summary())
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .summary import describe

    from .instance import load_instance
    facts = describe(load_instance(args.instance))
    if args.json:
        print(json.dumps(facts, indent=1))
    else:
        width = max(len(k) for k in facts)
        for key, value in facts.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .formulations.integer import add_cut, integer_model, write_model
    from .information import Criterion
    from .instance import load_instance
    from .solve import solve

    out = _check_output(args.out, (f".{args.format}",))
    instance = load_instance(args.instance)
    crit = Criterion.make(args.criterion, instance)
    relaxed = solve(instance, "relax", crit, budget=args.budget)
    greedy = solve(instance, "greedy", crit, budget=args.budget)
    model = integer_model(instance, crit, args.budget)
    add_cut(model, instance, crit, relaxed.counts)
    add_cut(model, instance, crit, greedy.counts.astype(float))
    write_model(model, out, args.format)
    print(f"wrote {out}: {len(instance.candidates)} integer columns and eta, "
          f"{len(model.rows)} rows, 2 cuts (at the relaxation's optimum and the greedy design); "
          f"relaxation bound {relaxed.bound:.6g}, greedy {greedy.objective:.6g}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import time

    from .generate import synthetic_instance
    from .instance import save_instance

    out = _check_output(args.out, (".json", ".npz"))
    start = time.perf_counter()
    synthetic = synthetic_instance(
        args.prompts, args.completions, args.dim, budget=args.budget, decay=args.decay,
        shared=args.shared, reward_scale=args.reward_scale, score_noise=args.score_noise,
        scores=not args.no_scores, ridge=args.ridge, weights=args.weights, seed=args.seed,
        name=args.name)
    save_instance(synthetic.instance, out)
    inst = synthetic.instance
    print(f"wrote {out}: {inst.n_prompts} prompts, {inst.n_completions} completions, "
          f"{len(inst.candidates)} candidate pairs, d = {inst.dim} "
          f"({time.perf_counter() - start:.2f} s)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate.study import load_config, read_csv, run_study, write_outputs

    config = load_config(args.config, seeds=args.seeds)
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise PairdesignError(f"{out_dir}: the folder does not exist")
    if not args.no_plot:
        from .simulate.plots import _pyplot

        _pyplot()  # fail before the runs when matplotlib is missing
    solver_log = logging.getLogger("pairdesign.solvers")
    level = solver_log.level
    solver_log.setLevel(max(logging.WARNING, log.level))  # thousands of solves: keep their lines out
    try:
        rows = read_csv(args.from_csv) if args.from_csv else run_study(config)
    finally:
        solver_log.setLevel(level)
    paths = write_outputs(config, rows, out_dir, plot=not args.no_plot)
    for kind, path in paths.items():
        print(f"wrote {path} ({kind})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .information import CRITERIA
    from .solvers.base import DEFAULT_METHOD, METHODS

    parser = argparse.ArgumentParser(
        prog="pairdesign",
        description="Choose which comparison pairs to send for human preference labeling.")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debugging detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("solve", help="choose pairs for an instance and write the design")
    p.add_argument("instance", help="instance file (.json or .npz)")
    p.add_argument("--out", required=True, help="design file to write (.json or .csv)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS))
    p.add_argument("--criterion", default="D", choices=list(CRITERIA), type=str.upper)
    p.add_argument("--budget", type=float, help="override the instance's budget")
    p.add_argument("--time-limit", type=_positive_float, metavar="SECONDS")
    p.add_argument("--seed", type=int, help="seed for methods that draw at random")
    p.add_argument("--option", type=_option, action="append", metavar="NAME=VALUE",
                   help="a method option, e.g. --option k=4 for first-k (repeatable)")
    p.add_argument("--solver", help="the method's solver: exact: highs (default) or pyomo:NAME "
                   "(appsi_highs, gurobi, cplex, scip, cbc where installed); relax: native (default), "
                   "cvxpy or cvxpy:NAME")
    p.add_argument("--certify", action="store_true",
                   help="also solve the relaxation and report its certified bound and the gap")
    p.set_defaults(run=cmd_solve)

    p = sub.add_parser("info", help="validate an instance and summarise it")
    p.add_argument("instance")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("export", help="write the integer program (master with its cuts) as LP or MPS")
    p.add_argument("instance")
    p.add_argument("--format", required=True, choices=["lp", "mps"])
    p.add_argument("--criterion", default="D", choices=list(CRITERIA), type=str.upper)
    p.add_argument("--budget", type=float, help="override the instance's budget")
    p.add_argument("--out", required=True, help="file to write (.lp or .mps)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("generate", help="write a synthetic instance")
    p.add_argument("--prompts", type=int, required=True, help="number of prompts n")
    p.add_argument("--completions", type=int, required=True, help="completions per prompt K")
    p.add_argument("--dim", type=int, required=True, help="feature dimension d")
    p.add_argument("--budget", type=float, help="label budget (default 4 d)")
    p.add_argument("--decay", type=float, default=1.0, help="spectrum decay: lambda_t ~ t^-decay")
    p.add_argument("--shared", type=float, default=0.5, help="variance share of the per-prompt component")
    p.add_argument("--reward-scale", type=float, default=1.0, help="sd of true reward gaps within a prompt")
    p.add_argument("--score-noise", type=float, default=0.5, help="sd of the noise on the pilot scores")
    p.add_argument("--no-scores", action="store_true", help="write no pilot scores")
    p.add_argument("--ridge", type=float, default=1e-6)
    p.add_argument("--weights", default="uniform", choices=["uniform", "scores"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="instance name")
    p.add_argument("--out", required=True, help="instance file to write (.json or .npz)")
    p.set_defaults(run=cmd_generate)

    p = sub.add_parser("simulate", help="run the downstream DPO study of a config (TOML or JSON)")
    p.add_argument("config", help="study config (.toml or .json): settings, designs, baselines, budgets")
    p.add_argument("--out-dir", default=".", help="folder for NAME.csv, NAME.png, NAME-summary.md")
    p.add_argument("--seeds", type=int, help="override the number of seeds")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    p.add_argument("--from-csv", metavar="CSV", help="recompute summary and plot from a CSV of runs")
    p.set_defaults(run=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    try:
        return args.run(args)
    except PairdesignError as exc:
        print(f"pairdesign: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pairdesign: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pairdesign: interrupted", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
