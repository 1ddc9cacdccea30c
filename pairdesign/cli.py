"""The ``pairdesign`` command: ``solve``, ``compare``, ``info``, ``export``, ``generate``,
``simulate`` (the downstream study) and the labeling pipeline (``import``, ``export --to``,
``labels``, ``next-round``).

Errors a user can cause print one line (``pairdesign: error: ...``) and exit with status 2;
outputs are written atomically, so a failed run leaves no partial file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import PairdesignError

log = logging.getLogger("pairdesign")


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    from ._jsonio import JSONError, loads

    try:
        return key.replace("-", "_"), loads(value)
    except JSONError:
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


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: equal after resolving links and ``..`` (and case, where
    the file system ignores it), or the same existing file (hard links)."""
    if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


PathRoles = Sequence[tuple[str, "str | os.PathLike | None"]]


def check_distinct_paths(inputs: PathRoles, outputs: PathRoles,
                         in_place: Sequence[tuple[str, str]] = ()) -> None:
    """Refuse a command whose output is one of its inputs or another of its outputs.

    ``inputs`` and ``outputs`` are ``(role, path)`` pairs (a role is the option that gave the
    path, e.g. ``"--out"``; None paths are skipped); ``in_place`` lists the ``(input role,
    output role)`` pairs that may be one file on purpose (an instance updated in place).
    Raises :class:`PairdesignError` naming the path and both roles; nothing has been read or
    written when it does.
    """
    given_in = [(role, path) for role, path in inputs if path is not None]
    given_out = [(role, path) for role, path in outputs if path is not None]
    for i, (role, path) in enumerate(given_out):
        for other, earlier in given_out[:i]:
            if _same_file(path, earlier):
                raise PairdesignError(f"{path}: {role} and {other} are the same file; "
                                      "give each output its own path")
        for source, read in given_in:
            if (source, role) not in in_place and _same_file(path, read):
                raise PairdesignError(f"{path}: {role} is also the input {source}; the command "
                                      "would overwrite what it reads: write it elsewhere")


def _paths_of(args: argparse.Namespace, roles: dict[str, str]) -> list[tuple[str, str | None]]:
    """``(role, path)`` for the path arguments ``{role: dest}`` of a command (a repeatable
    option gives one pair per path)."""
    out: list[tuple[str, str | None]] = []
    for role, dest in roles.items():
        value = getattr(args, dest, None)
        out.extend((role, v) for v in (value if isinstance(value, list) else [value]))
    return out


def _check_command(args: argparse.Namespace) -> None:
    """Checks every subcommand shares, before it reads or writes anything: a seed is a
    non-negative integer (NumPy's generators take no other), and no output is an input or
    another output (from the path roles the subcommand declares)."""
    seed = getattr(args, "seed", None)
    if seed is not None and seed < 0:
        raise PairdesignError(f"--seed: must be a non-negative integer, got {seed}")
    check_distinct_paths(_paths_of(args, args.inputs), _paths_of(args, args.outputs),
                         args.in_place)


def cmd_solve(args: argparse.Namespace) -> int:
    from .instance import load_instance
    from .solve import solve

    out = _check_output(args.out, (".json", ".csv"))
    instance = load_instance(args.instance)
    if args.scheduler is not None or not hasattr(instance, "candidates") or (
            os.environ.get("DASK_SCHEDULER_ADDRESS") and args.instance.lower().endswith(".zarr")):
        return _solve_on_dask(args, out)
    options = dict(args.option or [])
    if args.solver is not None:
        options["solver"] = args.solver
    if args.start is not None:
        if args.method != "local-search":
            raise PairdesignError("--start belongs to --method local-search")
        options["start"] = args.start
    with _solve_display(args, args.time_limit):
        result = solve(instance, method=args.method, criterion=args.criterion, budget=args.budget,
                       time_limit=args.time_limit, seed=args.seed, options=options,
                       certify=args.certify)
    return _finish_solve(result, out)


def _finish_solve(result, out: Path) -> int:
    """Write the design (atomically), print its summary; exit status 130 for an interrupted run
    (Ctrl-C: the best design held is written, and the status says it was interrupted)."""
    from .solvers.result import TerminationCondition

    result.save(out)
    print(result.summary())
    print(f"wrote {out}")
    if result.termination is TerminationCondition.interrupted:
        print("pairdesign: interrupted (the best design held was written)", file=sys.stderr)
        return 130
    return 0


def _solve_on_dask(args: argparse.Namespace, out: Path) -> int:
    """Solve a .zarr store on Dask: a store whose instance fits in memory runs every method
    unchanged on the seam's Dask pool (--scheduler given); a larger one runs relax, round,
    greedy or a baseline out of core (pairdesign.outofcore)."""
    from .store import InstanceStore, is_store, open_store

    if not is_store(args.instance):
        raise PairdesignError(f"{args.instance}: --scheduler runs a .zarr store on Dask; this is not one")
    scheduler = None if args.scheduler in (None, "local") else args.scheduler
    options = dict(args.option or [])
    store = open_store(args.instance)
    from .instance import load_instance
    instance = load_instance(args.instance)
    if not isinstance(instance, InstanceStore):
        from .dask_pool import DaskCandidatePool
        from .solve import solve

        if args.start is not None:
            options["start"] = args.start
        if args.solver is not None:
            options["solver"] = args.solver
        with DaskCandidatePool(store, instance, scheduler) as pool, _solve_display(args, args.time_limit):
            result = solve(instance, method=args.method, criterion=args.criterion, budget=args.budget,
                           time_limit=args.time_limit, seed=args.seed, options=options,
                           certify=args.certify, pool=pool)
    else:
        from .outofcore import POOL_METHODS, solve_store

        method = "round" if args.method == "auto" else args.method
        if method not in POOL_METHODS or args.certify or args.solver or args.start:
            raise PairdesignError(f"{args.instance} is too large for memory: it runs out of core with "
                                  f"--method {', '.join(POOL_METHODS)} (no --certify, --solver or --start: "
                                  "round and relax carry a certified bound)")
        with _solve_display(args, args.time_limit):
            result = solve_store(store, method, args.criterion, scheduler=scheduler, budget=args.budget,
                                 time_limit=args.time_limit, seed=args.seed, options=options)
    return _finish_solve(result, out)


def _number_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or any(not v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare, format_table, plot, write_csv
    from .instance import load_instance

    out = _check_output(args.out, (".csv",)) if args.out else None
    figure = _check_output(args.plot, (".png",)) if args.plot else None
    instance = load_instance(args.instance)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    rows = compare(instance, methods, args.budgets, criterion=args.criterion,
                   time_limit=args.time_limit, seed=args.seed)
    print(format_table(rows))
    if out is not None:
        write_csv(rows, out)
        print(f"wrote {out}")
    if figure is not None:
        plot(rows, figure, title=f"{instance.name or Path(args.instance).name}, criterion {args.criterion}")
        print(f"wrote {figure}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .summary import describe

    from .instance import load_instance
    from .store import describe_store, is_store, open_store
    instance = load_instance(args.instance)
    if hasattr(instance, "candidates"):
        facts = describe(instance)
        if is_store(args.instance):
            facts.update(describe_store(open_store(args.instance)))
    else:
        facts = describe_store(instance)
    if args.json:
        print(json.dumps(facts, indent=1))
    else:
        width = max(len(k) for k in facts)
        for key, value in facts.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


@contextlib.contextmanager
def _all_or_none(*paths: Path | None) -> Iterator[None]:
    """Several outputs of one command: if writing any of them fails, every output is as it was
    before the command (new files removed, files that existed restored from a copy kept beside
    them until the command succeeds; each file is itself written atomically)."""
    import shutil
    import tempfile

    targets = list(dict.fromkeys(p for p in paths if p is not None))
    backups: dict[Path, Path] = {}
    try:
        for p in targets:
            if p.exists():
                fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".bak", dir=p.parent)
                os.close(fd)
                shutil.copy2(p, tmp)
                backups[p] = Path(tmp)
        yield
    except BaseException:
        for p in targets:
            if p in backups:
                os.replace(backups.pop(p), p)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        raise
    finally:
        for tmp in backups.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _needs_texts(instance, path: str) -> None:
    if instance.completion_texts is None or instance.prompt_texts is None:
        raise PairdesignError(f"{path}: the instance carries no texts; tasks and datasets need them: "
                              "build it with `pairdesign import`")


@contextlib.contextmanager
def _solve_display(args: argparse.Namespace, time_limit: float | None) -> Iterator[None]:
    """While solving at a terminal (and not --quiet / --verbose): the progress log as one bar
    line instead of a scroll of lines. Elsewhere the log lines are printed as they come."""
    handler = getattr(args, "log_handler", None)
    if args.quiet or args.verbose or handler is None or not sys.stderr.isatty():
        yield
        return
    from .progress import LogBar

    bar = LogBar("solving", time_limit)
    log.removeHandler(handler)
    log.addHandler(bar)
    try:
        yield
    finally:
        log.removeHandler(bar)
        bar.close()
        log.addHandler(handler)


def _progress(args: argparse.Namespace) -> bool:
    """A progress bar unless --quiet (and only on a terminal: see pairdesign.progress)."""
    return not args.quiet


def cmd_import(args: argparse.Namespace) -> int:
    import time

    from .instance import save_instance
    from .pipeline.importer import FieldNames, import_generations

    out = _check_output(args.out, (".npz", ".json", ".zarr"))
    start = time.perf_counter()
    names = FieldNames(prompt_id=args.prompt_id_field, prompt=args.prompt_field,
                       completions=args.completions_field, completion_id=args.id_field,
                       text=args.text_field, embedding=args.embedding_field, score=args.score_field)
    if args.basis is not None and (args.dim is not None or args.reduce != "auto" or args.seed is not None):
        raise PairdesignError("--basis projects on the basis of another instance: --dim, --reduce and --seed "
                              "are that basis's, leave them out")
    instance = import_generations(
        args.generations, dim=64 if args.dim is None else args.dim, reduce=args.reduce,
        seed=0 if args.seed is None else args.seed, budget=args.budget, ridge=args.ridge, weights=args.weights,
        names=names, embed_model=args.embed_model, name=args.name, basis=args.basis, progress=_progress(args))
    save_instance(instance, out)
    proj = instance.projection or {}
    extra = f", explained variance {proj['explained_variance']:.3f}" if "explained_variance" in proj else ""
    if "basis_from" in proj:
        extra += f", on the basis of {args.basis}"
    if proj.get("method") == "none":
        how = (f"embeddings D = {proj.get('input_dim')} <= --dim {64 if args.dim is None else args.dim}: not "
               "reduced (the features are the embeddings)")
    else:
        how = f"embeddings {proj.get('input_dim')} -> d = {instance.dim} by {proj.get('method')}{extra}"
    print(f"wrote {out}: {instance.n_prompts} prompts, {instance.n_completions} completions, {how} "
          f"({time.perf_counter() - start:.2f} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if (args.to is None) == (args.format is None):
        raise PairdesignError("export needs exactly one of --to labelstudio|argilla|jsonl (annotation "
                              "tasks from a design) and --format lp|mps (the integer program of an instance)")
    if args.to is not None:
        return cmd_export_tasks(args)
    if args.instance_file is not None:
        raise PairdesignError("--instance goes with --to (task export); with --format the "
                              "positional argument is the instance")
    return cmd_export_program(args)


def cmd_export_tasks(args: argparse.Namespace) -> int:
    from .design import load_design
    from .instance import load_instance
    from .pipeline.tasks import TASK_FORMATS, write_tasks
    from .pipeline.tool_setup import setup_path

    if args.instance_file is None:
        raise PairdesignError("export --to needs --instance INSTANCE (the instance the design was solved on)")
    out = _check_output(args.out, (TASK_FORMATS[args.to].suffix,))
    instance = load_instance(args.instance_file)
    criterion = None
    store = None
    if not hasattr(instance, "candidates"):  # a store too large for memory: the design's prompts only
        from .store_view import design_view

        store, instance = instance, design_view(instance, args.source)
    _needs_texts(instance, args.instance_file)
    design = load_design(args.source, instance)
    if store is not None:
        from .information import Criterion

        name = str(design.metadata.get("criterion", "D"))
        if Criterion.named(name).needs_H:  # H of the whole pool's uniform policy, block by block
            from .blockpool import covariance_block

            H = sum(covariance_block(store, b) for b in range(store.n_blocks)) / store.n_prompts
            criterion = Criterion.make(name, instance, H=H)
    with _all_or_none(out, setup_path(out, args.to)):
        summary = write_tasks(instance, design, args.to, out, seed=args.seed, criterion=criterion,
                              progress=_progress(args))
    print(f"wrote {out}: {summary['tasks']} {args.to} tasks of design {summary['design']} "
          f"(instance {summary['instance']}), in labeling order ({summary['order']})")
    if summary["setup"] is not None:
        what = {"labelstudio": "the labeling config (Settings > Labeling Interface > Code)",
                "argilla": "the dataset settings (rg.Settings.from_json)"}[args.to]
        print(f"wrote {summary['setup']}: {what}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from .design import load_design
    from .instance import load_instance, save_instance
    from .pipeline.labels import apply_labels, read_labels, write_preference_dataset
    from .pipeline.tasks import design_id

    out = _check_output(args.out, (".jsonl",))
    target = _check_output(args.instance_out or args.instance_file, (".npz", ".json"))
    instance = load_instance(args.instance_file)
    if not hasattr(instance, "candidates"):
        raise PairdesignError(f"{args.instance_file} is too large for memory: labels write the whole "
                              "instance back with the labeled pairs, which needs it in memory (export "
                              "works from such a store; labels do not yet)")
    _needs_texts(instance, args.instance_file)
    expected = pairs = None
    if args.design is not None:
        design = load_design(args.design, instance)
        expected = design_id(instance, design)
        cand = instance.candidates
        pairs = np.stack([cand.j[design.rows], cand.k[design.rows]], axis=1)
    labelset = read_labels(args.labels, instance, winner_field=args.winner_field, expected_design=expected,
                           design_pairs=pairs, tie_control=args.tie_control)
    updated = apply_labels(instance, labelset)  # validated before anything is written
    with _all_or_none(out, target):
        rows = write_preference_dataset(instance, labelset, out, conversational=args.conversational,
                                        with_ids=args.with_ids)
        save_instance(updated, target)
    print(labelset.summary())
    print(f"wrote {out}: {rows} preference rows ({'conversational' if args.conversational else 'standard'} form)")
    print(f"wrote {target}: {updated.labeled.shape[0]} labeled pairs in M0 (round {len(updated.rounds)})")
    return 0


def cmd_next_round(args: argparse.Namespace) -> int:
    from .instance import load_instance, save_instance
    from .pipeline.labels import read_labels
    from .pipeline.rounds import next_round

    out = _check_output(args.out, (".npz", ".json"))
    design_out = _check_output(args.design_out, (".json", ".csv"))
    report_out = None if args.report is None else _check_output(args.report, (".json",))
    instance = load_instance(args.instance)
    labelsets = [read_labels(path, instance, winner_field=args.winner_field, allow_stored=True,
                             tie_control=args.tie_control) for path in args.labels or []]
    for labelset in labelsets:
        print(("already in the instance: " if labelset.stored else "") + labelset.summary())
    budget = instance.budget if args.budget is None else args.budget
    with _solve_display(args, args.time_limit):
        round_ = next_round(instance, labelsets, budget=budget, method=args.method,
                            criterion=args.criterion, weights=args.weights, ridge=args.ridge,
                            seed=args.seed, time_limit=args.time_limit, posterior=args.posterior,
                            temper=args.temper)
    report = round_.report()
    fit = round_.fit
    se = fit.standard_errors
    z = np.abs(fit.theta) / se
    top = np.argsort(-z)[:5]
    print(f"fit: {fit.n_labels:g} labels ({report['ties']} ties) on {report['labeled_pairs']} pairs, "
          f"ridge {round_.instance.ridge:g}, loss {fit.loss:.6g}, "
          f"{'converged' if fit.converged else 'NOT converged'} in {fit.iterations} iterations")
    print(f"theta: |theta| = {np.linalg.norm(fit.theta):.4g}, standard errors median {np.median(se):.3g} "
          f"(min {se.min():.3g}, max {se.max():.3g}); largest |theta/se|: "
          + ", ".join(f"theta[{t}] = {fit.theta[t]:.3g} +- {se[t]:.2g}" for t in top))
    with _all_or_none(design_out, out, report_out):
        round_.result.save(design_out)
        save_instance(round_.instance, out)
        if report_out is not None:
            from ._atomic import atomic_write
            with atomic_write(report_out, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(report, indent=1) + "\n")
    print(round_.result.summary())
    print(f"wrote {design_out}, {out}" + (f", {report_out}" if report_out else ""))
    return 0


def cmd_export_program(args: argparse.Namespace) -> int:
    from .formulations.integer import add_cut, integer_model, write_model
    from .information import Criterion
    from .instance import load_instance
    from .solve import solve

    out = _check_output(args.out, (f".{args.format}",))
    instance = load_instance(args.source)
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

    from .generate import synthetic_instance, write_synthetic_store
    from .instance import save_instance
    from .store import is_store, open_store

    out = _check_output(args.out, (".json", ".npz", ".zarr"))
    start = time.perf_counter()
    if is_store(out):  # block by block: never the whole instance in memory
        write_synthetic_store(
            out, args.prompts, args.completions, args.dim, budget=args.budget, decay=args.decay,
            shared=args.shared, reward_scale=args.reward_scale, score_noise=args.score_noise,
            scores=not args.no_scores, ridge=args.ridge, weights=args.weights, seed=args.seed,
            name=args.name, dtype=args.dtype, block_rows=args.block_rows)
        store = open_store(out)
        pairs = args.prompts * args.completions * (args.completions - 1) // 2
        print(f"wrote {out}: {store.n_prompts} prompts, {store.n_completions} completions, "
              f"{pairs} candidate pairs, d = {store.dim}, {store.n_blocks} blocks of {args.dtype} "
              f"({time.perf_counter() - start:.2f} s)")
        return 0
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
    names = [".png", "-summary.md", "-savings.json", "-ceiling.csv", "-ceiling.md"]
    # the runs CSV may be rewritten from itself (--from-csv OUT/NAME.csv): read whole, same rows
    check_distinct_paths(_paths_of(args, args.inputs),
                         [("--out-dir (runs CSV)", out_dir / f"{config.name}.csv")]
                         + [("--out-dir", out_dir / f"{config.name}{end}") for end in names],
                         in_place=(("--from-csv", "--out-dir (runs CSV)"),))
    solver_log = logging.getLogger("pairdesign.solvers")
    level = solver_log.level
    solver_log.setLevel(max(logging.WARNING, log.level))  # thousands of solves: keep their lines out
    try:
        rows = read_csv(args.from_csv) if args.from_csv else run_study(config)
        paths = write_outputs(config, rows, out_dir, plot=not args.no_plot)
        for kind, path in paths.items():
            print(f"wrote {path} ({kind})")
        if args.ceiling is not None:
            from .simulate.ceiling import run_ceiling

            if args.ceiling > 0:
                config = dataclasses.replace(config, seeds=config.seeds[:args.ceiling])
            for kind, path in _write_ceiling(config, run_ceiling(config), out_dir).items():
                print(f"wrote {path} ({kind})")
    finally:
        solver_log.setLevel(level)
    return 0


def _write_ceiling(config, rows: list[dict], out_dir: Path) -> dict[str, Path]:
    """``--ceiling``: NAME-ceiling.csv (every world) and NAME-ceiling.md (the table)."""
    import csv

    from ._atomic import atomic_write
    from .simulate.ceiling import CEILING_COLUMNS, ceiling_table

    paths = {"ceiling csv": out_dir / f"{config.name}-ceiling.csv",
             "ceiling table": out_dir / f"{config.name}-ceiling.md"}
    with atomic_write(paths["ceiling csv"], newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CEILING_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_write(paths["ceiling table"]) as handle:
        handle.write(f"# {config.name}: savings ceiling\n\n")
        handle.write(ceiling_table(rows, {s.name: s.dim for s in config.settings}))
    return paths


def build_parser() -> argparse.ArgumentParser:
    from .information import CRITERIA
    from .solvers.base import DEFAULT_METHOD, METHODS

    parser = argparse.ArgumentParser(
        prog="pairdesign",
        description="Choose which comparison pairs to send for human preference labeling.")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debugging detail")
    parser.set_defaults(in_place=())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # -q / -v after the subcommand as well as before it (SUPPRESS: the one given before stands
    # unless repeated after)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bar, only warnings and errors")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="print debugging detail")

    p = sub.add_parser("solve", parents=[common], help="choose pairs for an instance and write the design")
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
    p.add_argument("--start", help="local-search: start from greedy (default), round, or a design file")
    p.add_argument("--scheduler", metavar="ADDRESS|local",
                   help="solve a .zarr store on Dask: on the cluster of this scheduler (default: the "
                   "DASK_SCHEDULER_ADDRESS variable), or 'local' (Dask's local scheduler; stores too large "
                   "for memory always run on Dask)")
    p.set_defaults(run=cmd_solve, inputs={"INSTANCE": "instance", "--start": "start"},
                   outputs={"--out": "out"})

    p = sub.add_parser("compare", parents=[common], help="run methods side by side: objective, certified efficiency, time")
    p.add_argument("instance", help="instance file (.json or .npz)")
    p.add_argument("--methods", help="comma-separated methods (default: auto, round, local-search, "
                   "greedy and the baselines the instance supports)")
    p.add_argument("--budgets", type=_number_list, help="comma-separated budgets (default: the instance's)")
    p.add_argument("--criterion", default="D", choices=list(CRITERIA), type=str.upper)
    p.add_argument("--time-limit", type=_positive_float, metavar="SECONDS", help="per method and budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="CSV file for the table")
    p.add_argument("--plot", help="PNG of objective and time against budget")
    p.set_defaults(run=cmd_compare, inputs={"INSTANCE": "instance"},
                   outputs={"--out": "out", "--plot": "plot"})

    p = sub.add_parser("info", parents=[common], help="validate an instance and summarise it")
    p.add_argument("instance")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=cmd_info, inputs={"INSTANCE": "instance"}, outputs={})

    from .pipeline.tasks import TASK_FORMATS

    p = sub.add_parser("export", parents=[common],
                       help="a design as annotation tasks (--to), or an instance's integer program (--format)",
                       description="export DESIGN --instance INSTANCE --to labelstudio|argilla|jsonl --out TASKS: "
                       "the design's pairs as annotation tasks, in labeling order; "
                       "export INSTANCE --format lp|mps --out FILE: the integer program (master with its cuts)")
    p.add_argument("source", metavar="DESIGN|INSTANCE",
                   help="a design file (with --to) or an instance file (with --format)")
    p.add_argument("--to", choices=sorted(TASK_FORMATS), help="annotation task format")
    p.add_argument("--instance", dest="instance_file", help="the instance of the design (with --to)")
    p.add_argument("--seed", type=int, default=0, help="seed of the left/right order of the two answers")
    p.add_argument("--format", choices=["lp", "mps"], help="integer program format")
    p.add_argument("--criterion", default="D", choices=list(CRITERIA), type=str.upper)
    p.add_argument("--budget", type=float, help="override the instance's budget")
    p.add_argument("--out", required=True, help="file to write (.json for labelstudio, .jsonl for argilla "
                   "and jsonl; .lp or .mps)")
    p.set_defaults(run=cmd_export, inputs={"DESIGN|INSTANCE": "source", "--instance": "instance_file"},
                   outputs={"--out": "out"})

    p = sub.add_parser("import", parents=[common], help="generations (JSONL) into an instance with texts",
                       description="One JSON line per prompt: {prompt_id, prompt, completions: [{id, text, "
                       "embedding, score}]}; embeddings reduced to d by PCA or a seeded random projection.")
    p.add_argument("generations", help="generations file (.jsonl)")
    p.add_argument("--out", required=True, help="instance file to write (.npz, .json, or a .zarr store)")
    p.add_argument("--dim", type=int, help="feature dimension d (default 64; embeddings of at most d "
                   "dimensions are not reduced)")
    p.add_argument("--reduce", default="auto", choices=["auto", "pca", "random", "none"],
                   help="auto: PCA when the embeddings have more than d dimensions")
    p.add_argument("--seed", type=int, help="seed of the random projection (default 0)")
    p.add_argument("--basis", metavar="INSTANCE", help="project on the stored basis (PCA mean and axes, or "
                   "the random projection) of an earlier round's instance, so that its features and these "
                   "are the same coordinates")
    p.add_argument("--budget", type=float, help="label budget stored in the instance (default 4 d)")
    p.add_argument("--ridge", type=float, default=1.0, help="the fit's L2 penalty, M0 = ridge I (default 1)")
    p.add_argument("--weights", default="uniform", choices=["uniform", "scores"])
    p.add_argument("--name", help="instance name (default: the file's stem)")
    p.add_argument("--embed-model", metavar="PATH|NAME",
                   help="compute every embedding with this locally installed sentence-transformers model "
                   "(extra 'embed'; never downloaded)")
    for field, default in (("prompt-id", "prompt_id"), ("prompt", "prompt"), ("completions", "completions"),
                           ("id", "id"), ("text", "text"), ("embedding", "embedding"), ("score", "score")):
        p.add_argument(f"--{field}-field", default=default, metavar="NAME",
                       help=f"name of the {field} field (default {default!r})")
    p.set_defaults(run=cmd_import, inputs={"GENERATIONS": "generations", "--basis": "basis"}, outputs={"--out": "out"})

    p = sub.add_parser("labels", parents=[common], help="labels back: a TRL preference dataset, "
                       "and the labeled pairs stored in the instance")
    p.add_argument("labels", help="labels file (.jsonl; .json: Label Studio's JSON or JSON-MIN export; "
                   ".csv: Label Studio's CSV export)")
    p.add_argument("--instance", dest="instance_file", required=True, help="the instance the tasks came from")
    p.add_argument("--out", required=True, help="DPO dataset to write (.jsonl, TRL preference form)")
    p.add_argument("--instance-out", help="where to write the instance with the labels stored "
                   "(default: update INSTANCE in place, atomically)")
    p.add_argument("--design", help="read the labels of this design file only (records of other designs, "
                   "e.g. earlier rounds of the same project, are skipped and reported)")
    p.add_argument("--winner-field", metavar="NAME", help="the field holding the vote (default: found from "
                   "the tool's shape: annotations, preference.responses, winner, preference, label, choice)")
    p.add_argument("--tie-control", metavar="NAME", help="Label Studio: the Choices control whose answer "
                   "means a tie (answers that are tie words, e.g. Tie, Equal, Same, Both, Neither, always are)")
    p.add_argument("--conversational", action="store_true", help="TRL's conversational form (message lists)")
    p.add_argument("--with-ids", action="store_true", help="add prompt_id, chosen_id and rejected_id")
    p.set_defaults(run=cmd_labels, inputs={"LABELS": "labels", "--instance": "instance_file",
                                          "--design": "design"},
                   outputs={"--out": "out", "--instance-out": "instance_out"},
                   in_place=(("--instance", "--instance-out"),))

    p = sub.add_parser("next-round", parents=[common], help="refit on all labels so far and design the next batch")
    p.add_argument("instance", help="instance file (.npz or .json)")
    p.add_argument("--labels", action="append", metavar="LABELS",
                   help="labels file(s) of the last round (repeatable; files already read in are recognised)")
    p.add_argument("--budget", type=float, help="labels in the next batch (default: the instance's budget)")
    p.add_argument("--out", required=True, help="updated instance to write (.npz or .json)")
    p.add_argument("--design-out", required=True, help="next design to write (.json or .csv)")
    p.add_argument("--report", help="write the fit (theta, standard errors, ...) as JSON")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS))
    p.add_argument("--criterion", default="D", choices=list(CRITERIA), type=str.upper)
    p.add_argument("--weights", choices=["uniform", "scores", "predictive", "expected"],
                   help="Bradley-Terry weights of the next design (default: keep the instance's): 1/4, "
                        "s(1-s) of the fit, p(1-p) with p the posterior predictive, or E[s(1-s)] "
                        "under the posterior")
    p.add_argument("--posterior", choices=["evidence", "fit"], default="evidence",
                   help="posterior of theta kept for the weights predictive/expected: prior precision "
                        "by maximum Laplace evidence (default) or the fit's own ridge")
    p.add_argument("--temper", type=float, default=1.0, metavar="T",
                   help="keep the posterior covariance times T >= 1 for the weights predictive/expected "
                        "(a tempered posterior: weights nearer 1/4 while the fit is unsure; default 1)")
    p.add_argument("--ridge", type=float, help="the fit's L2 penalty (default: the instance's ridge)")
    p.add_argument("--seed", type=int)
    p.add_argument("--time-limit", type=_positive_float, metavar="SECONDS")
    p.add_argument("--winner-field", metavar="NAME")
    p.add_argument("--tie-control", metavar="NAME", help="Label Studio: the Choices control meaning a tie")
    p.set_defaults(run=cmd_next_round, inputs={"INSTANCE": "instance", "--labels": "labels"},
                   outputs={"--out": "out", "--design-out": "design_out", "--report": "report"},
                   in_place=(("INSTANCE", "--out"),))

    p = sub.add_parser("generate", parents=[common], help="write a synthetic instance")
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
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="features of a .zarr store (default float32)")
    p.add_argument("--block-rows", type=int, help="completions per block of a .zarr store (whole prompts; "
                   "default 262144); the draws depend on it")
    p.add_argument("--out", required=True, help="instance file to write (.json, .npz, or a .zarr store "
                   "written block by block)")
    p.set_defaults(run=cmd_generate, inputs={}, outputs={"--out": "out"})

    p = sub.add_parser("simulate", parents=[common], help="run the downstream DPO study of a config (TOML or JSON)")
    p.add_argument("config", help="study config (.toml or .json): settings, designs, baselines, budgets")
    p.add_argument("--out-dir", default=".", help="folder for NAME.csv, NAME.png, NAME-summary.md")
    p.add_argument("--seeds", type=int, help="override the number of seeds")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--from-csv", metavar="CSV", help="recompute summary and plot from a CSV of runs")
    p.add_argument("--ceiling", nargs="?", type=int, const=0, metavar="SEEDS",
                   help="then write NAME-ceiling.csv/.md: the most labels any design could save against the "
                        "best baseline (certified, first-order model; a relaxation per budget and seed), on "
                        "the first SEEDS seeds (default: all)")
    p.set_defaults(run=cmd_simulate, inputs={"CONFIG": "config", "--from-csv": "from_csv"},
                   outputs={})  # its outputs are named by the config: checked in cmd_simulate
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    args.log_handler = handler
    from ._atomic import Terminated, terminate_as_exception

    try:
        with terminate_as_exception():  # SIGTERM cleans up temporary files like Ctrl-C
            _check_command(args)
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
    except Terminated as exc:
        print("pairdesign: terminated", file=sys.stderr)
        return int(exc.code)
    finally:
        log.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
