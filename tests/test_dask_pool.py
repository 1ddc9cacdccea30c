"""The candidate pool on Dask: block kernels against today's functions, same answers as in
memory on a LocalCluster of 2 worker processes, faults (a worker killed mid-run, an
unreachable scheduler)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

import pairdesign  # noqa: E402
from pairdesign.blockpool import MemoryPool, vertex_value  # noqa: E402
from pairdesign.cli import main  # noqa: E402
from pairdesign.dask_pool import ClusterError, DaskCandidatePool, DaskPool  # noqa: E402
from pairdesign.errors import InfeasibleError, OptionError  # noqa: E402
from pairdesign.fingerprint import instance_fingerprint  # noqa: E402
from pairdesign.generate import synthetic_instance  # noqa: E402
from pairdesign.information import Criterion, gains, information_matrix  # noqa: E402
from pairdesign.oracle import LinearOracle  # noqa: E402
from pairdesign.outofcore import _Driver, _factor, solve_on_pool  # noqa: E402
from pairdesign.polytope import linear_constraints  # noqa: E402
from pairdesign.store import open_store, save_store  # noqa: E402


def _instance(kind: str) -> pairdesign.Instance:
    inst = synthetic_instance(120, 5, 4, seed=3, budget=14).instance
    if kind in ("caps", "all"):
        inst = replace(inst, max_pairs_per_prompt=1, prompt_max_pairs=np.r_[2.0, np.full(119, np.inf)])
    if kind in ("fixed", "all"):
        inst = replace(inst, fixed_in=np.array([[0, 1], [0, 2], [10, 11]]), fixed_out=np.array([[5, 6]]),
                       labeled=np.array([[20, 21], [20, 22]]), labeled_counts=np.array([2, 1]))
    if kind == "scores":
        inst = replace(inst, weights="scores")
    if kind == "cover":  # coverage minimums with caps, labels per pair and pairs fixed in
        inst = replace(inst, budget=300, min_pairs_per_prompt=2, max_pairs_per_prompt=3, max_labels_per_pair=2,
                       prompt_max_pairs=np.r_[2.0, np.full(119, np.inf)],
                       fixed_in=np.array([[0, 1], [0, 2], [10, 11]]), fixed_out=np.array([[5, 6]]))
    return inst


KINDS = ["plain", "caps", "fixed", "all", "scores", "cover"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_block_gain_pass_and_vertex_match_the_in_memory_gains_and_oracle(kind):
    inst = _instance(kind)
    crit = Criterion.make("D", inst)
    n = np.random.default_rng(1).random(len(inst.candidates)) * 0.05
    M = information_matrix(inst, n)
    g = gains(inst, M, crit)
    _, top = LinearOracle(inst, linear_constraints(inst, inst.budget)).maximize(g)
    pool = MemoryPool(inst, block_rows=70)
    budget_left = _Driver(pool, "D", None, None, 0, None).budget_free  # after fixed and mandatory labels
    gp = pool.gain_pass(_factor(M, crit)[1], 12, budget_left)
    assert gp.pairs == len(inst.candidates)
    _, value = vertex_value(gp, budget_left)
    assert value == pytest.approx(top, rel=1e-12)
    assert np.allclose(gp.top.value, np.sort(g)[::-1][:12], rtol=1e-12)


def test_the_pool_refuses_what_its_oracle_cannot_do():
    inst = _instance("plain")
    with pytest.raises(OptionError, match="per-completion caps"):
        MemoryPool(replace(inst, max_pairs_per_completion=2))
    with pytest.raises(OptionError, match="explicit pairs"):
        MemoryPool(replace(inst, pairs=np.array([[0, 1], [5, 6]])))
    with pytest.raises(OptionError, match="prompts\\[\\].min_pairs"):
        MemoryPool(replace(inst, prompt_min_pairs=np.r_[1.0, np.full(119, np.nan)]))
    with pytest.raises(OptionError, match="groups"):
        MemoryPool(replace(inst, groups=(pairdesign.instance.Group("g", np.arange(3), 5.0),)))
    with pytest.raises(InfeasibleError, match="coverage minimums"):
        solve_on_pool(MemoryPool(replace(inst, min_pairs_per_prompt=1)), "round")  # 120 prompts, 14 labels


def test_the_seams_dask_pool_takes_what_out_of_core_refuses(tmp_path):
    """DaskCandidatePool keeps the oracle in memory: only its quadratic forms run on Dask, so
    per-completion caps and groups are the in-memory methods' business there."""
    inst = replace(_instance("plain"), max_pairs_per_completion=2)
    save_store(inst, tmp_path / "c.zarr", block_rows=70)
    store = open_store(tmp_path / "c.zarr")
    with pytest.raises(OptionError, match="per-completion caps"):
        DaskPool(store)
    with DaskCandidatePool(store, store.to_instance()) as pool:  # Dask's local threaded scheduler
        ours = pairdesign.solve(pool.instance, method="max-distance", pool=pool)
    assert ours.pairs == pairdesign.solve(inst, method="max-distance").pairs


DETERMINISTIC = ["first-k", "best-vs-worst", "max-margin", "min-margin", "max-distance", "greedy"]


@pytest.mark.parametrize("kind", ["plain", "all", "cover"])
def test_baselines_and_greedy_fill_the_pool_exactly_as_in_memory(kind):
    """The fill pass (every prompt's minimum, then passes in the ranking's order within the caps)
    builds DesignBuilder.fill's design; greedy meets the minimums first as in memory."""
    inst = _instance(kind)
    pool = MemoryPool(inst, block_rows=70)
    for method in DETERMINISTIC:  # solve() takes a block pool: the out-of-core path
        ours, ref = pairdesign.solve(inst, method, seed=0, pool=pool), pairdesign.solve(inst, method=method, seed=0)
        assert sorted(ours.pairs) == sorted(ref.pairs), method
        assert abs(ours.objective - ref.objective) <= 1e-9
    for method in ("random", "ultrafeedback"):  # drawn block by block: feasible, reproducible
        ours = solve_on_pool(pool, method, seed=0)
        assert len(ours.pairs) == inst.budget and ours.pairs == solve_on_pool(pool, method, seed=0).pairs
        assert not linear_constraints(inst, inst.budget).violations(_counts(inst, ours))


def _small_cover() -> pairdesign.Instance:
    inst = synthetic_instance(16, 5, 4, seed=3, budget=40).instance
    return replace(inst, min_pairs_per_prompt=2, max_pairs_per_prompt=3, prompt_max_pairs=np.r_[2.0, np.full(15, np.inf)],
                   fixed_in=np.array([[0, 1], [0, 2], [10, 11]]), fixed_out=np.array([[5, 6]]))


@pytest.mark.parametrize("kind", ["small", pytest.param("cover", marks=pytest.mark.slow)])
def test_coverage_minimums_out_of_core_relax_and_round_match_in_memory(kind):
    inst = _small_cover() if kind == "small" else _instance("cover")
    pool = MemoryPool(inst, block_rows=30)
    relaxed = solve_on_pool(pool, "relax", options={"tol": 1e-6})
    exact = pairdesign.solve(inst, method="relax", options={"tol": 1e-8})
    assert relaxed.status.value == "optimal"
    assert relaxed.bound >= exact.objective - 1e-9 and exact.bound >= relaxed.objective - 1e-9
    assert relaxed.bound - relaxed.objective <= -inst.dim * np.log1p(-1e-6) + 1e-12
    rounded, ref = solve_on_pool(pool, "round", seed=0), pairdesign.solve(inst, method="round", seed=0)
    assert not linear_constraints(inst, inst.budget).violations(_counts(inst, rounded))
    assert abs(rounded.objective - ref.objective) <= 1e-9


def _counts(inst, result) -> np.ndarray:
    """n_p over the instance's candidates of a result's pairs (named by ids)."""
    cand = inst.candidates
    index = {tuple(ids): p for p, ids in enumerate(inst.pair_ids(cand.j, cand.k))}
    n = np.zeros(len(cand))
    for ids in result.pairs:
        n[index[tuple(ids)]] += 1
    return n


@pytest.mark.parametrize("kind", ["plain", "all"])
def test_out_of_core_greedy_is_plain_greedy_and_relax_is_certified(kind):
    inst = _instance(kind)
    pool = MemoryPool(inst, block_rows=70)
    ours, ref = solve_on_pool(pool, "greedy"), pairdesign.solve(inst, method="greedy")
    assert sorted(ours.pairs) == sorted(ref.pairs) and ours.objective == pytest.approx(ref.objective, abs=1e-9)
    relaxed = solve_on_pool(pool, "relax", options={"tol": 1e-6})
    exact = pairdesign.solve(inst, method="relax", options={"tol": 1e-8})
    # both bound the same optimum from above; ours is certified within a D-efficiency of 1e-6
    assert relaxed.bound >= exact.objective - 1e-9 and exact.bound >= relaxed.objective - 1e-9
    assert relaxed.bound - relaxed.objective <= -inst.dim * np.log1p(-1e-6) + 1e-12
    assert relaxed.status.value == "optimal"


# ---------------------------------------------------------------------- on a LocalCluster
@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stores")
    paths = {}
    for kind in ("plain", "all", "cover"):
        paths[kind] = folder / f"{kind}.zarr"
        save_store(_instance(kind), paths[kind], block_rows=70)  # 9 blocks
    return paths


@pytest.mark.parametrize("method", ["relax", "round", "greedy", "local-search", "max-distance"])
def test_every_method_gives_the_same_answer_on_the_dask_pool_as_in_memory(client, stores, method):
    inst = _instance("all")
    store = open_store(stores["all"])
    ref = pairdesign.solve(inst, method=method, seed=0)
    with DaskCandidatePool(store, store.to_instance(), client) as pool:
        ours = pairdesign.solve(pool.instance, method=method, seed=0, pool=pool)
    assert ours.pairs == ref.pairs and ours.weights == ref.weights
    assert abs(ours.objective - ref.objective) <= 1e-9
    assert (ours.bound is None) == (ref.bound is None)
    if ref.bound is not None:
        assert abs(ours.bound - ref.bound) <= 1e-9


@pytest.mark.parametrize("kind, method", [("all", "relax"), ("all", "round"), ("all", "greedy"),
                                          ("all", "random"), ("cover", "greedy"), ("cover", "max-distance")])
def test_out_of_core_runs_give_the_same_answer_on_dask_as_in_memory(client, stores, kind, method):
    inst = _instance(kind)
    ref = solve_on_pool(MemoryPool(inst, block_rows=70), method, seed=0)
    with DaskPool(open_store(stores[kind]), client) as pool:
        ours = solve_on_pool(pool, method, seed=0)
    assert ours.pairs == ref.pairs
    # the design records the whole instance (labels and exports check it), not the working set
    assert ours.instance_fingerprint == ref.instance_fingerprint == instance_fingerprint(inst)
    assert abs(ours.objective - ref.objective) <= 1e-9
    if ref.bound is not None:
        assert abs(ours.bound - ref.bound) <= 1e-9


class _KillOnce(distributed.WorkerPlugin):
    """Kills the worker process when it starts a gain-pass task, once per marker file."""

    name = "kill-once"

    def __init__(self, marker: str, kernel: str):
        self.marker, self.kernel = marker, kernel

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and self.kernel in str(key) and not os.path.exists(self.marker):
            Path(self.marker).write_text("killed")
            os._exit(1)


@pytest.fixture
def kill_plugin(client):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield lambda marker, kernel: client.register_plugin(_KillOnce(str(marker), kernel))
    client.unregister_worker_plugin(_KillOnce.name)
    client.wait_for_workers(1, timeout=120)  # the nanny restarts the killed one in the background


def test_a_worker_killed_mid_run_is_recovered_by_dask_with_the_same_answer(client, stores, tmp_path, kill_plugin):
    inst = _instance("plain")
    ref = solve_on_pool(MemoryPool(inst, block_rows=70), "round", seed=0)
    kill_plugin(tmp_path / "killed", "gain_block")
    with DaskPool(open_store(stores["plain"]), client) as pool:
        ours = solve_on_pool(pool, "round", seed=0)
    assert (tmp_path / "killed").exists()  # a worker did die mid-pass
    assert ours.pairs == ref.pairs and abs(ours.bound - ref.bound) <= 1e-9


def test_a_worker_lost_beyond_the_retries_stops_with_one_line_and_writes_nothing(
        client, stores, tmp_path, kill_plugin, capsys, monkeypatch):
    allowed = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    try:
        kill_plugin(tmp_path / "killed", "forms_block")
        address = client.scheduler.address
        out = tmp_path / "design.json"
        code = main(["solve", str(stores["plain"]), "--method", "relax", "--scheduler", address,
                     "--out", str(out)])
    finally:
        client.run_on_scheduler(lambda dask_scheduler, n=allowed: setattr(dask_scheduler, "allowed_failures", n))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("pairdesign: error: a Dask worker died while running forms_block")
    assert (tmp_path / "killed").exists() and not out.exists()


def test_an_unreachable_scheduler_is_one_line_and_exit_2(stores, tmp_path, capsys, monkeypatch):
    import pairdesign.dask_pool as dask_pool

    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT", 0.5)
    out = tmp_path / "d.json"
    code = main(["solve", str(stores["plain"]), "--scheduler", "tcp://127.0.0.1:9", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and not out.exists()
    assert err[0].startswith("pairdesign: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")  # the convention, too
    assert main(["solve", str(stores["plain"]), "--out", str(out)]) == 2 and not out.exists()


def test_a_store_too_large_for_memory_runs_out_of_core_from_the_cli(stores, tmp_path, capsys, monkeypatch):
    import pairdesign.store as store_module

    monkeypatch.setattr(store_module, "MEMORY_LIMIT", 0)
    monkeypatch.setattr(store_module.load_store, "__defaults__", (0,))
    out = tmp_path / "d.json"
    assert main(["solve", str(stores["plain"]), "--method", "greedy", "--out", str(out)]) == 0
    ref = pairdesign.solve(_instance("plain"), method="greedy")
    doc = json.loads(out.read_text())
    assert sorted(map(tuple, doc["pairs"])) == sorted(ref.pairs) and doc["objective"] == pytest.approx(ref.objective)
    assert main(["solve", str(stores["plain"]), "--method", "exact", "--out", str(out)]) == 2
    assert "too large for memory" in capsys.readouterr().err
