"""The candidate pool on Dask: the block kernels of :mod:`pairdesign.blockpool` as Dask tasks
over a store (:mod:`pairdesign.store`), reduced in a tree.

Each pass is one task graph: a task per block (it opens the store and reads its block itself;
only the small matrix R and the settings travel) and a tree of reduces, 8 parts at a time.
Tasks are pure, so a task lost with its worker is run again elsewhere (Dask's scheduler does this,
up to ``distributed.scheduler.allowed-failures`` times); if that does not suffice the pass stops
with :class:`ClusterError` and nothing is written.

Two pools: :class:`DaskCandidatePool` is the seam of :mod:`pairdesign.pool` (every method of
``solve`` runs on it unchanged; its vectors over the candidates live in the driver, so it serves
stores whose instance fits in memory, with the O(P d) passes on the workers); :class:`DaskPool`
is the pool of :mod:`pairdesign.outofcore`, whose passes also reduce on the workers, for stores
too large for one process.

Where it runs: ``scheduler=None`` (and no ``DASK_SCHEDULER_ADDRESS`` in the environment) uses
Dask's local threaded scheduler in this process; an address (``tcp://host:8786``) or a
``distributed.Client`` runs the passes on that cluster.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import numpy as np

from .blockpool import (FillPass, GainPass, MarginalPass, RowData, blocks_of_rows, covariance_block,
                        fill_block, forms_block, gain_block, marginal_block, pool_spec, reduce_fills,
                        reduce_gains, reduce_marginals, rows_block)
from .errors import PairdesignError
from .store import InstanceStore

log = logging.getLogger(__name__)
_FAN_IN = 8
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler

__all__ = ["ClusterError", "DaskCandidatePool", "DaskPool", "connect"]


class ClusterError(PairdesignError):
    """The Dask cluster cannot be reached, or lost workers beyond its retries."""


def _dask():
    try:
        import dask
    except ImportError:
        raise PairdesignError("the Dask pool needs dask: pip install 'pairdesign[dask]'") from None
    return dask


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``address``; one clear error if unreachable."""
    _dask()
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT if timeout is None else timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    except ValueError as exc:  # a malformed address
        raise ClusterError(f"not a Dask scheduler address {address!r}: {exc}") from None


class DaskPool:
    """The pool of a store, its passes run by Dask (see the module docstring)."""

    def __init__(self, store: InstanceStore, scheduler: "str | Any | None" = None, retries: int = 2,
                 forms_only: bool = False):
        self.store = store
        self.meta = store.meta
        small = {name: store.small(name) for name in ("pairs", "fixed_in", "fixed_out", "labeled",
                                                      "labeled_counts", "group_names")}
        self.spec = pool_spec(n_completions=store.n_completions, dim=store.dim, meta=self.meta,
                              own_caps="prompt_max_pairs" in store.array_names, pairs=small["pairs"],
                              fixed_in=small["fixed_in"], fixed_out=small["fixed_out"],
                              labeled=small["labeled"], groups=small["group_names"] is not None,
                              own_minimums="prompt_min_pairs" in store.array_names,
                              forms_only=forms_only)
        empty = np.zeros((0, 2), dtype=np.int64)
        self.fixed_in = empty if small["fixed_in"] is None else small["fixed_in"].astype(np.int64)
        self.labeled = empty if small["labeled"] is None else small["labeled"].astype(np.int64)
        self.labeled_counts = small["labeled_counts"]
        self.has_scores = "score" in store.array_names
        self.n_prompts = store.n_prompts
        self.n_blocks = store.n_blocks
        self.name = store.name
        self.retries = retries
        address = scheduler if scheduler is not None else os.environ.get("DASK_SCHEDULER_ADDRESS")
        self._own_client = isinstance(address, str) and bool(address)
        self.client = connect(address) if self._own_client else address or None
        where = "Dask's local threaded scheduler" if self.client is None else f"the cluster at {self.client.scheduler.address}"
        log.info("Dask pool: %d blocks of %s on %s", self.n_blocks, store.path, where)

    def close(self) -> None:
        if self._own_client and self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self) -> "DaskPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------------- running a pass
    def _run(self, kernel: Callable, args: Sequence[Any], reduce: Callable[[list], Any],
             blocks: Sequence[int] | None = None, per_block: dict[int, Any] | None = None) -> Any:
        dask = _dask()
        from dask import delayed

        blocks = range(self.n_blocks) if blocks is None else blocks
        if per_block is not None:
            parts = [delayed(kernel, pure=True)(self.store, b, per_block[b]) for b in blocks]
        else:
            parts = [delayed(kernel, pure=True)(self.store, b, *args) for b in blocks]
        while len(parts) > 1:
            parts = [delayed(reduce, pure=True)(parts[i:i + _FAN_IN]) for i in range(0, len(parts), _FAN_IN)]
        target = parts[0] if parts else delayed(reduce)([])
        if self.client is None:
            (out,) = dask.compute(target, scheduler="threads")
            return out
        from distributed import KilledWorker

        try:
            future = self.client.compute(target, retries=self.retries)
            return future.result()
        except KilledWorker as exc:
            raise ClusterError(f"a Dask worker died while running {kernel.__name__} and the task failed "
                               f"on every retry ({exc}); stopped, nothing written") from None
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"lost the Dask scheduler: {exc}; stopped, nothing written") from None

    # ---------------------------------------------------------------------- the pool's passes
    def gain_pass(self, R: np.ndarray, top: int, budget_left: float) -> GainPass:
        return self._run(gain_block, (self.spec, R, top, budget_left),
                         lambda parts: reduce_gains(parts, top, budget_left))

    def marginal_pass(self, R1: np.ndarray, R2: np.ndarray | None, criterion: str, top: int,
                      closed_prompts: np.ndarray, full_pairs: np.ndarray) -> MarginalPass:
        return self._run(marginal_block, (self.spec, R1, R2, criterion, top, closed_prompts, full_pairs),
                         lambda parts: reduce_marginals(parts, top))

    def fill_pass(self, ranking: Any, capacity: int) -> FillPass:
        return self._run(fill_block, (self.spec, ranking, capacity),
                         lambda parts: reduce_fills(parts, capacity))

    def row_features(self, rows: np.ndarray) -> RowData:
        groups = blocks_of_rows(self.store.block_rows, rows)
        if not groups:
            return RowData()
        return self._run(rows_block, (), RowData.merge, blocks=sorted(groups), per_block=groups)

    def policy_covariance(self) -> np.ndarray:
        return self._run(covariance_block, (), lambda parts: sum(parts)) / self.n_prompts

    def prompt_caps_of(self, prompts: np.ndarray) -> np.ndarray:
        prompts = np.asarray(prompts, dtype=np.int64)
        caps = np.full(prompts.size, self.spec.max_pairs_per_prompt)
        if self.spec.own_caps and prompts.size:
            own = np.asarray(self.store.group["prompt_max_pairs"].get_orthogonal_selection(prompts))
            caps[np.isfinite(own)] = own[np.isfinite(own)]
        return caps

    def ids(self, prompts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.store.ids("prompt_ids", prompts), self.store.ids("completion_ids", rows)

    def fingerprint(self) -> str:
        return self.store.fingerprint()


def _concat(parts: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Blocks' forms in block order, factor by factor."""
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))] if parts else []


class DaskCandidatePool:
    """The seam's :class:`~pairdesign.pool.CandidatePool` of a store: the quadratic forms of all
    pairs (the gain pass of every method) computed by Dask over the store's blocks; per-pair data,
    the top-k reduce, the information of a design, working-set features and the linear oracle
    from the in-memory instance (``store.to_instance()``), exactly as
    :class:`~pairdesign.pool.InMemoryPool` computes them.

    ``solve(instance, method, pool=DaskCandidatePool(store, instance, scheduler))`` runs any
    method unchanged."""

    def __init__(self, store: InstanceStore, instance: Any, scheduler: "str | Any | None" = None,
                 retries: int = 2):
        from .pool import InMemoryPool

        self.runner = DaskPool(store, scheduler, retries, forms_only=True)
        self.instance = instance
        self.local = InMemoryPool(instance)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "DaskCandidatePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def size(self) -> int:
        return self.local.size

    @property
    def dim(self) -> int:
        return self.local.dim

    @property
    def pairs(self):
        return self.local.pairs

    def quadratic_forms(self, factors: Sequence[np.ndarray], pairs: np.ndarray | None = None) -> list[np.ndarray]:
        if pairs is not None:  # a working set: in the driver
            return self.local.quadratic_forms(factors, pairs)
        factors = [np.asarray(R, dtype=np.float64) for R in factors]
        out = self.runner._run(forms_block, (self.runner.spec, factors), _concat)
        if any(q.shape != (self.size,) for q in out):
            raise RuntimeError("the store's blocks do not hold the instance's candidates")
        return out

    def top(self, values: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
        return self.local.top(values, k, among)

    def information(self, a: np.ndarray) -> np.ndarray:
        return self.local.information(a)

    def features(self, pairs: np.ndarray) -> np.ndarray:
        return self.local.features(pairs)

    def oracle(self, polytope):
        return self.local.oracle(polytope)
