"""Generations (JSONL, one line per prompt) into an instance with texts and reduced features.

A line is ``{"prompt_id": ..., "prompt": ..., "completions": [{"id": ..., "text": ...,
"embedding": [...], "score": ...}, ...]}`` (field names configurable with :class:`FieldNames`).
Embeddings X (N x D) become features phi (N x d) by

- ``pca``: ``phi = (X - mean) V_d``, V_d the top-d eigenvectors of the covariance of X (signs
  fixed so that each column's largest entry is positive); the explained share of variance is
  recorded;
- ``random``: ``phi = X R``, R (D x d) with independent N(0, 1/d) entries drawn from ``seed``
  (Johnson-Lindenstrauss: distances kept up to 1 +- O(sqrt(log N / d)));
- ``none``: ``phi = X`` (needs D = d, or D <= d with ``auto``).

The method, D, d and the seed are stored in ``instance.projection``. Pair differences, hence the
design, do not depend on the centering.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from .._jsonio import JSONError, loads_line
from ..errors import InputError, OptionError
from ..instance import Instance, text_problem
from ..progress import Progress
from .basis import Basis

log = logging.getLogger("pairdesign")

REDUCTIONS = ("auto", "pca", "random", "none")


@dataclass(frozen=True)
class FieldNames:
    """Names of the fields of a generations line (``--prompt-id-field`` and so on)."""

    prompt_id: str = "prompt_id"
    prompt: str = "prompt"
    completions: str = "completions"
    completion_id: str = "id"
    text: str = "text"
    embedding: str = "embedding"
    score: str = "score"


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _id(value: Any, default: str) -> str | None:
    """An id as a string (ints allowed); None when invalid."""
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        text = str(value)
        return text if text else None
    return None


@dataclass
class _Parsed:
    prompt_ids: list[str]
    prompt_texts: list[str]
    sizes: list[int]
    completion_ids: list[str]
    completion_texts: list[str]
    scores: list[float]
    embeddings: list[np.ndarray]  # one (K, D) float32 block per line, or empty
    lines: list[int] = field(default_factory=list)  # the file line of each block


def _parse(path: Path, names: FieldNames, need_embeddings: bool, progress: bool) -> _Parsed:
    out = _Parsed([], [], [], [], [], [], [])
    seen: dict[str, int] = {}
    dim: int | None = None
    dim_line = 0
    with open(path, "rb") as handle, Progress(os.path.getsize(path), "import", enabled=progress) as bar:
        for number, raw in enumerate(handle, start=1):
            bar.advance(len(raw))
            if not raw.strip():
                continue

            def fail(message: str, where: str = "") -> None:
                raise InputError(message, source=str(path),
                                 field=f"line {number}" + (f": {where}" if where else ""))

            try:
                row = loads_line(raw, number)  # refuses NaN, 1e400, deep nesting, lone surrogates
            except JSONError as exc:
                raise InputError(exc.reason, source=str(path), field=exc.where) from None
            if not isinstance(row, dict):
                fail("must be a JSON object, one prompt per line")
            pid = _id(row.get(names.prompt_id), f"line{number}")
            if pid is None:
                fail(f"must be a non-empty string or integer, got {row.get(names.prompt_id)!r}",
                     names.prompt_id)
            if text_problem(pid):
                fail(str(text_problem(pid)), names.prompt_id)
            if pid in seen:
                fail(f"duplicate prompt id {pid!r} (also line {seen[pid]})", names.prompt_id)
            seen[pid] = number
            prompt = row.get(names.prompt)
            if not isinstance(prompt, str):
                fail("missing (the prompt's text)" if prompt is None else
                     f"must be a string, got {type(prompt).__name__}", names.prompt)
            if text_problem(prompt):
                fail(str(text_problem(prompt)), names.prompt)
            comps = row.get(names.completions)
            if not isinstance(comps, list) or not comps:
                fail("must be a non-empty list of completions", names.completions)
            ids: set[str] = set()
            block = []
            for j, comp in enumerate(comps):
                where = f"{names.completions}[{j}]"
                if not isinstance(comp, dict):
                    fail("must be an object", where)
                cid = _id(comp.get(names.completion_id), f"c{j}")
                if cid is None:
                    fail(f"must be a non-empty string or integer, got {comp.get(names.completion_id)!r}",
                         f"{where}.{names.completion_id}")
                if text_problem(cid):
                    fail(str(text_problem(cid)), f"{where}.{names.completion_id}")
                if cid in ids:
                    fail(f"duplicate completion id {cid!r} within the prompt", f"{where}.{names.completion_id}")
                ids.add(cid)
                text = comp.get(names.text)
                if not isinstance(text, str):
                    fail("missing (the completion's text)" if text is None else
                         f"must be a string, got {type(text).__name__}", f"{where}.{names.text}")
                if text_problem(text):
                    fail(str(text_problem(text)), f"{where}.{names.text}")
                score = comp.get(names.score)
                if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
                    fail(f"must be a number or null, got {score!r}", f"{where}.{names.score}")
                out.completion_ids.append(cid)
                out.completion_texts.append(text)
                out.scores.append(math.nan if score is None else float(score))
                if need_embeddings:
                    emb = comp.get(names.embedding)
                    if emb is None:
                        fail(f"missing; every completion needs an embedding (or pass --embed-model to "
                             "compute them all with a local sentence-embedding model)",
                             f"{where}.{names.embedding}")
                    block.append(emb)
            if need_embeddings:
                try:
                    arr = np.asarray(block)
                except ValueError:
                    arr = np.asarray([0.0])  # ragged: found below
                if arr.ndim != 2 or arr.dtype.kind not in "iuf" or arr.shape[1] == 0:
                    for j, emb in enumerate(block):
                        where = f"{names.completions}[{j}].{names.embedding}"
                        if not isinstance(emb, list) or not emb or not all(
                                isinstance(x, (int, float)) and not isinstance(x, bool) for x in emb):
                            fail("must be a non-empty list of numbers", where)
                        if len(emb) != len(block[0]):
                            fail(f"has {len(emb)} values, expected {len(block[0])}", where)
                    fail("must be lists of numbers", names.completions)
                if dim is None:
                    dim, dim_line = arr.shape[1], number
                elif arr.shape[1] != dim:
                    fail(f"has {arr.shape[1]} values, expected {dim} (as line {dim_line})",
                         f"{names.completions}[0].{names.embedding}")
                big = np.abs(arr).max(axis=1) > _FLOAT32_MAX
                if big.any():
                    j = int(np.flatnonzero(big)[0])
                    fail(f"holds {float(np.abs(arr[j]).max()):.3g}, beyond the float32 range embeddings "
                         f"are kept in (about {_FLOAT32_MAX:.3g}): rescale the embeddings",
                         f"{names.completions}[{j}].{names.embedding}")
                out.embeddings.append(arr.astype(np.float32))
                out.lines.append(number)
            out.prompt_ids.append(pid)
            out.prompt_texts.append(prompt)
            out.sizes.append(len(comps))
    if not out.prompt_ids:
        raise InputError("no generations (the file has no non-blank line)", source=str(path))
    return out


def reduce_embeddings(
    embeddings: np.ndarray, dim: int, method: str = "auto", *, seed: int | None = 0,
    chunk: int = 1 << 14, basis: Basis | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Reduce embeddings X (N x D) to features (N x d) by PCA, a seeded Gaussian random
    projection, or not at all; returns the features (float64) and the record of what was done
    (with the basis, see :mod:`pairdesign.pipeline.basis`). With ``basis`` (read from an earlier
    instance), X is projected on it and ``dim``, ``method`` and ``seed`` are not used.
    """
    X = np.asarray(embeddings)
    if X.ndim != 2:
        raise OptionError(f"embeddings must be a 2-d array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise OptionError("embeddings contain NaN or infinity")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise OptionError(f"The 'seed' parameter must be a non-negative integer or None. Got {seed!r} instead.")
    N, D = X.shape
    if basis is not None:
        if D != basis.input_dim:
            raise OptionError(f"the embeddings have D = {D}, the basis D = {basis.input_dim}")
        return basis.project(X, chunk), {k: v for k, v in basis.record.items() if k != "explained_variance"}
    if method not in REDUCTIONS:
        raise OptionError(f"unknown reduction {method!r}; choose one of {list(REDUCTIONS)}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise OptionError(f"The 'dim' parameter must be a positive integer. Got {dim!r} instead.")
    dim = int(dim)
    if method == "auto":
        method = "none" if D <= dim else "pca"
    if method == "none":
        if method == "none" and D > dim:
            raise OptionError(f"the embeddings have D = {D} > d = {dim}: choose --reduce pca or random")
        return X.astype(np.float64), {"method": "none", "input_dim": D, "dim": D}
    if dim > D:
        raise OptionError(f"cannot reduce D = {D} dimensions to d = {dim}: d must be at most D")
    if method == "random":
        rng = np.random.default_rng(seed)
        basis = Basis(mean=np.zeros(D), matrix=rng.standard_normal((D, dim)) / math.sqrt(dim))
        return basis.project(X, chunk), {"method": "random", "input_dim": D, "dim": dim, "seed": seed,
                                         "distribution": "normal(0, 1/d)", "basis": basis.encode()}
    if N < 2:
        raise OptionError("PCA needs at least two completions")
    mean = X.mean(axis=0, dtype=np.float64)
    cov = np.zeros((D, D))
    for start in range(0, N, chunk):
        block = X[start:start + chunk].astype(np.float64) - mean
        cov += block.T @ block
    cov /= N - 1
    # only the top d eigenpairs (LAPACK syevr): much cheaper than the full decomposition
    evals, evecs = scipy.linalg.eigh(cov, subset_by_index=[D - dim, D - 1], driver="evr")
    top = np.argsort(evals)[::-1]
    V = evecs[:, top]
    V *= np.where(V[np.abs(V).argmax(axis=0), np.arange(dim)] < 0, -1.0, 1.0)
    basis = Basis(mean=mean, matrix=V)
    total = float(np.trace(cov))
    share = float(np.clip(evals, 0, None).sum() / total) if total > 0 else 1.0
    return basis.project(X, chunk), {"method": "pca", "input_dim": D, "dim": dim,
                                     "explained_variance": round(share, 6), "basis": basis.encode()}


def basis_from(instance: Instance, source: str) -> Basis:
    """The reduction basis an instance keeps (with its projection record, ``basis_from`` set to
    the file's name)."""
    record = dict(instance.projection or {})
    if record.get("method") not in ("pca", "random"):
        raise OptionError(f"{source}: its features are not a reduction of embeddings (projection "
                          f"{record.get('method', 'not recorded')}): no basis to project on")
    basis = Basis.decode(record.get("basis"), source, {**record, "basis_from": Path(source).name})
    if (basis.input_dim, basis.dim) != (record.get("input_dim"), instance.dim):
        raise OptionError(f"{source}: projection.basis has shape {basis.input_dim} x {basis.dim}, but the "
                          f"instance records D = {record.get('input_dim')} and has d = {instance.dim}")
    return basis


def import_generations(
    path: str | os.PathLike,
    *,
    dim: int = 64,
    reduce: str = "auto",
    seed: int | None = 0,
    budget: float | None = None,
    ridge: float = 1.0,
    weights: str = "uniform",
    names: FieldNames = FieldNames(),
    embed_model: str | None = None,
    embed_batch_size: int = 64,
    name: str | None = None,
    basis: str | os.PathLike | None = None,
    progress: bool = False,
) -> Instance:
    """Read generations (JSONL) into an :class:`Instance` with texts, scores and features.

    ``budget`` defaults to 4 d labels; ``ridge`` (the fit's L2 penalty, M0 = ridge I) to 1.
    With ``embed_model`` (a local path or a cached model name) every completion is embedded as
    ``prompt + "\\n\\n" + completion`` by sentence-transformers, never downloading a model;
    otherwise every completion must carry an embedding. With ``basis`` (an instance file made by
    this function with ``pca`` or ``random``), the embeddings are projected on that instance's
    stored basis (its mean and axes) instead of a new one, so that the features of a later round
    are those of the first (``dim``, ``reduce`` and ``seed`` are then the basis's). Raises
    :class:`InputError` naming the file and line of the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    if reduce not in REDUCTIONS:
        raise OptionError(f"unknown reduction {reduce!r}; choose one of {list(REDUCTIONS)}")
    fixed: Basis | None = None
    if basis is not None:
        from ..instance import load_instance
        fixed = basis_from(load_instance(basis), str(basis))
        fitted_by, by = fixed.record.get("embedded_by"), None if embed_model is None else str(embed_model)
        if fitted_by != by:
            raise OptionError(f"{basis}: its basis was fitted on embeddings "
                              f"{'by ' + repr(fitted_by) if fitted_by else 'read from the generations file'}, "
                              f"these are {'by ' + repr(by) if by else 'read from the file'}: "
                              "project only embeddings of the same model")
    if embed_model is not None:
        from .embed import load_model
        model = load_model(embed_model)  # fails early, before reading the file
    parsed = _parse(path, names, need_embeddings=embed_model is None, progress=progress)
    if fixed is not None and parsed.embeddings and parsed.embeddings[0].shape[1] != fixed.input_dim:
        raise InputError(f"the embeddings have D = {parsed.embeddings[0].shape[1]}, the basis of {basis} "
                         f"D = {fixed.input_dim}", source=str(path))
    if embed_model is not None:
        from .embed import embed_texts
        prompts_per_row = np.repeat(np.arange(len(parsed.sizes)), parsed.sizes)
        texts = [parsed.prompt_texts[i] + "\n\n" + t
                 for i, t in zip(prompts_per_row.tolist(), parsed.completion_texts)]
        X = embed_texts(model, texts, batch_size=embed_batch_size, progress=progress)
    else:
        X = np.concatenate(parsed.embeddings, axis=0)
    lines = np.repeat(parsed.lines, [b.shape[0] for b in parsed.embeddings]) if parsed.lines else None
    parsed.embeddings.clear()
    with np.errstate(over="raise", invalid="raise"):
        try:
            features, record = reduce_embeddings(X, dim, reduce, seed=seed, basis=fixed)
        except FloatingPointError:
            features = np.array([np.inf])
    if not np.all(np.isfinite(features)):
        row = int(np.argmax(np.abs(X).max(axis=1)))
        where = (f"line {int(lines[row])}: " if lines is not None else "") + "embeddings"
        raise InputError(f"the embeddings overflow when reduced (values up to "
                         f"{float(np.abs(X[row]).max()):.3g}): rescale them", source=str(path), field=where)
    if embed_model is not None:
        record["embedded_by"] = str(embed_model)
    del X
    scores = np.asarray(parsed.scores)
    instance = Instance.from_arrays(
        features,
        np.repeat(np.arange(len(parsed.sizes)), parsed.sizes),
        budget=4 * features.shape[1] if budget is None else budget,
        scores=None if np.isnan(scores).all() else scores,
        prompt_ids=parsed.prompt_ids,
        completion_ids=parsed.completion_ids,
        prompt_texts=tuple(parsed.prompt_texts),
        completion_texts=tuple(parsed.completion_texts),
        projection=record,
        ridge=ridge,
        weights=weights,
        name=path.stem if name is None else name,
    )
    log.info(f"import: {instance.n_prompts} prompts, {instance.n_completions} completions, "
             f"embeddings D = {record['input_dim']} -> d = {instance.dim} ({record['method']})")
    return instance

