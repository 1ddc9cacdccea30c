"""The candidate pool on Dask at scale: wall time and peak memory of every process.

    python benchmarks/dask_scale.py store  --prompts 100000 --completions 15 --dim 32 --out /tmp/x.zarr
    python benchmarks/dask_scale.py solve  /tmp/x.zarr --workers 1,2 [--local]
    python benchmarks/dask_scale.py memory --prompts 10000 --completions 15 --dim 32 --dir /tmp

``store`` generates straight into a store, block by block, and prints its wall time and peak
resident memory. ``solve`` relaxes to a certified D-efficiency loss of 1e-4 and rounds
(``pairdesign.outofcore``, method round) on a LocalCluster of 1 and 2 worker processes (one
thread each; ``--local``: also Dask's local threaded scheduler in this process), printing wall
times (relax, then round), passes over the pool, the certified D-efficiency, and the peak
resident memory (VmHWM) of the driver (with the scheduler) and of each worker. ``memory``
compares, on one instance in memory, ``solve(method="round")`` of today's in-memory path with the
same instance's store solved out of core on Dask's local scheduler and through the seam's
DaskCandidatePool (the overhead). Figures: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pairdesign.generate import synthetic_instance, write_synthetic_store  # noqa: E402
from pairdesign.store import open_store, save_store  # noqa: E402


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _relax_seconds(log: tuple[str, ...]) -> float:
    times = [float(m.group(1)) for line in log if "pool relax:" in line and "after" in line
             for m in [re.match(r"\[\s*([0-9.]+)s\]", line)] if m]
    return times[-1] if times else float("nan")


def cmd_store(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    write_synthetic_store(args.out, args.prompts, args.completions, args.dim, seed=args.seed,
                          budget=args.budget)
    store = open_store(args.out)
    pairs = args.prompts * args.completions * (args.completions - 1) // 2
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
    print(f"store: {args.prompts:,} prompts x {args.completions} = {pairs:,} pairs, d = {args.dim}, "
          f"{store.n_blocks} blocks, {size / 2**20:,.0f} MiB on disk: written in "
          f"{time.perf_counter() - start:.1f} s, peak RSS {_peak_mib():,.0f} MiB")


def _solve_once(path: str, scheduler, tol: float, method: str = "round") -> tuple[object, float]:
    from pairdesign.dask_pool import DaskPool
    from pairdesign.outofcore import solve_on_pool

    start = time.perf_counter()
    with DaskPool(open_store(path), scheduler) as pool:
        options = {"tol": tol} if method in ("relax", "round") else {}
        result = solve_on_pool(pool, method, seed=0, options=options)
    return result, time.perf_counter() - start


def _row(label: str, result, seconds: float, workers_mib: list[float]) -> str:
    relax = _relax_seconds(result.log)
    passes = sum(1 for line in result.log if "pool relax: round" in line)
    if result.bound is None:  # greedy, the baselines: passes over the pool, no bound
        passes = sum(1 for line in result.log if "pool" in line and ("greedy:" in line or "fill pass" in line))
    eff = result.efficiency_bound
    workers = ", ".join(f"{w:,.0f}" for w in workers_mib) or "-"
    bound = "-" if result.bound is None else f"{result.bound:.6f}"
    return (f"| {label} | {seconds:,.1f} | {relax:,.1f} | {seconds - relax:,.1f} | {passes} | "
            f"{result.objective:.6f} | {bound} | {'-' if eff is None else f'{eff:.5f}'} | "
            f"{_peak_mib():,.0f} | {workers} |")


def cmd_solve(args: argparse.Namespace) -> None:
    from distributed import Client, LocalCluster

    store = open_store(args.store)
    K = store.n_completions // store.n_prompts
    print(f"{args.store}: {store.n_prompts:,} prompts x {K}, {store.n_prompts * K * (K - 1) // 2:,} pairs, "
          f"d = {store.dim}, {store.n_blocks} blocks; round with relax tol {args.tol:g}; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print("| run | wall s | relax s | round s | passes | objective | bound | D-eff >= | driver MiB | workers MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    if args.local:
        result, seconds = _solve_once(args.store, None, args.tol, args.method)
        print(_row("local threads (2)", result, seconds, []), flush=True)
    for n in args.workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit=args.worker_memory) as cluster, Client(cluster) as client:
            result, seconds = _solve_once(args.store, client, args.tol, args.method)
            peaks = client.run(_peak_mib)
            print(_row(f"{args.method}, LocalCluster {n} worker{'s' if n > 1 else ''}", result, seconds,
                       list(peaks.values())), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def cmd_memory(args: argparse.Namespace) -> None:
    import pairdesign

    folder = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        inst = synthetic_instance(args.prompts, args.completions, args.dim, seed=args.seed).instance
        path = folder / "x.zarr"
        save_store(inst, path)
        pairs = len(inst.candidates)
        print(f"{pairs:,} pairs, d = {args.dim}; round, relax tol {args.tol:g} (median of {args.repeat}); "
              f"load average {os.getloadavg()[0]:.1f}")
        rows = {}
        for label, run in (
            ("in memory (today's solve)", lambda: pairdesign.solve(
                inst, method="round", seed=0, options={"relax_tol": args.tol, "tol": args.tol})),
            ("out of core, Dask local threads", lambda: _solve_once(str(path), None, args.tol)[0]),
            ("seam DaskCandidatePool, local threads", lambda: _seam(path, inst, args.tol)),
        ):
            times, result = [], None
            for _ in range(args.repeat):
                t = time.perf_counter()
                result = run()
                times.append(time.perf_counter() - t)
            rows[label] = (float(np.median(times)), result)
        base = rows["in memory (today's solve)"][0]
        print("| path | wall s (median) | vs in memory | objective | bound | D-eff >= |")
        print("|---|---|---|---|---|---|")
        for label, (seconds, result) in rows.items():
            print(f"| {label} | {seconds:.2f} | {seconds / base:.2f}x | {result.objective:.6f} | "
                  f"{result.bound:.6f} | {result.efficiency_bound:.5f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _seam(path: Path, inst, tol: float):
    import pairdesign
    from pairdesign.dask_pool import DaskCandidatePool

    store = open_store(path)
    with DaskCandidatePool(store, inst, None) as pool:
        return pairdesign.solve(inst, method="round", seed=0, options={"relax_tol": tol, "tol": tol}, pool=pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("store")
    p.add_argument("--prompts", type=int, required=True)
    p.add_argument("--completions", type=int, default=15)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--budget", type=float, help="default 4 d")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_store)
    p = sub.add_parser("solve")
    p.add_argument("store")
    p.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--worker-memory", default="6GiB", help="LocalCluster memory_limit per worker")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--local", action="store_true", help="also Dask's local threaded scheduler")
    p.add_argument("--method", default="round", help="any method of pairdesign.outofcore.POOL_METHODS")
    p.set_defaults(run=cmd_solve)
    p = sub.add_parser("memory")
    p.add_argument("--prompts", type=int, default=10_000)
    p.add_argument("--completions", type=int, default=15)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default=None)
    p.set_defaults(run=cmd_memory)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)  # progress
    logging.getLogger("distributed").setLevel(logging.WARNING)
    args.run(args)


if __name__ == "__main__":
    main()
