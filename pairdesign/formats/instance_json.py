"""The JSON form of an instance, ``pairdesign.instance/1``: small and hand-written instances.

One object with the settings (``budget``, ``ridge``, ``weights``, caps), a list of ``prompts`` each
with its ``completions`` (``id``, ``features``, optional ``score`` and ``text``), and pair tables
(``pairs``, ``fixed_in``, ``fixed_out``, ``labeled``) that name pairs by
``[prompt_id, completion_id, completion_id]``, and an optional ``posterior`` of theta
(``{"mean": [d numbers], "covariance": [d rows of d numbers]}``, written by ``next-round``). The layout is described in docs/design.md.
Reading checks the document's structure here and leaves the meaning to :class:`Instance`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write
from .._jsonio import JSONError, loads
from ..errors import InstanceError
from ..instance import FORMAT, Group, Instance

_TOP_FIELDS = {
    "format", "name", "prompts", "budget", "ridge", "weights", "max_pairs_per_prompt",
    "max_pairs_per_completion", "max_labels_per_pair", "pairs", "fixed_in", "fixed_out",
    "labeled", "groups", "projection", "rounds", "min_pairs_per_prompt", "posterior",
}
_PROMPT_FIELDS = {"id", "completions", "max_pairs", "min_pairs", "text"}
_COMPLETION_FIELDS = {"id", "features", "score", "text"}


def _expect(cond: bool, message: str, where: str) -> None:
    if not cond:
        raise InstanceError(message, field=where)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _object_with_id(obj: Any, known: set[str], where: str) -> str:
    """Check a JSON object of the given fields with a non-empty string ``id``; return the id."""
    _expect(isinstance(obj, dict), "must be an object", where)
    unknown = sorted(set(obj) - known)
    _expect(not unknown, f"unknown field(s) {unknown}; known: {sorted(known)}", where)
    _expect("id" in obj, "missing", f"{where}.id")
    _expect(isinstance(obj["id"], str) and obj["id"] != "", "must be a non-empty string", f"{where}.id")
    return obj["id"]


def _instance_from_json(doc: Any) -> Instance:
    _expect(isinstance(doc, dict), "the top level must be a JSON object", "(top level)")
    _expect("format" in doc, f"missing; expected {FORMAT!r}", "format")
    _expect(doc["format"] == FORMAT, f"unsupported version {doc['format']!r}; expected {FORMAT!r}", "format")
    unknown = sorted(set(doc) - _TOP_FIELDS)
    _expect(not unknown, f"unknown field(s) {unknown}; known: {sorted(_TOP_FIELDS)}", unknown[0] if unknown else "")
    _expect("prompts" in doc, "missing", "prompts")
    _expect("budget" in doc, "missing", "budget")
    prompts = doc["prompts"]
    _expect(isinstance(prompts, list) and len(prompts) > 0, "must be a non-empty list", "prompts")

    prompt_ids: list[str] = []
    completion_ids: list[str] = []
    features: list[list[float]] = []
    scores: list[float] = []
    sizes: list[int] = []
    own_caps: list[float] = []
    own_mins: list[float] = []  # prompts[].min_pairs (NaN: the global min_pairs_per_prompt)
    local: list[dict[str, int]] = []
    d: int | None = None
    texts: dict[str, list[Any]] = {"prompt": [], "completion": []}

    def text_of(obj: dict[str, Any], kind: str, where: str) -> None:
        """Texts are all or nothing: every prompt (completion) has one, or none has."""
        has = "text" in obj
        if texts[kind] and (texts[kind][0] is not None) != has:
            first = "has" if texts[kind][0] is not None else "has no"
            raise InstanceError(f"{'missing' if not has else 'unexpected'}: the first {kind} {first} "
                                "a text, so every one must" + ("" if not has else " not"),
                                field=f"{where}.text")
        _expect(not has or isinstance(obj["text"], str), "must be a string", f"{where}.text")
        texts[kind].append(obj["text"] if has else None)

    for i, prompt in enumerate(prompts):
        where = f"prompts[{i}]"
        prompt_ids.append(_object_with_id(prompt, _PROMPT_FIELDS, where))
        text_of(prompt, "prompt", where)
        cap = prompt.get("max_pairs")
        _expect(cap is None or (isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0),
                f"must be an integer >= 0 or null, got {cap!r}", f"{where}.max_pairs")
        own_caps.append(math.inf if cap is None else float(cap))
        own_min = prompt.get("min_pairs")
        _expect(own_min is None or (isinstance(own_min, int) and not isinstance(own_min, bool) and own_min >= 0),
                f"must be an integer >= 0 or null, got {own_min!r}", f"{where}.min_pairs")
        own_mins.append(math.nan if own_min is None else float(own_min))
        comps = prompt.get("completions")
        _expect(isinstance(comps, list) and len(comps) > 0, "must be a non-empty list", f"{where}.completions")
        ids: dict[str, int] = {}
        for j, comp in enumerate(comps):
            cw = f"{where}.completions[{j}]"
            cid = _object_with_id(comp, _COMPLETION_FIELDS, cw)
            _expect(cid not in ids, f"duplicate completion id {cid!r} within its prompt "
                                    f"(also completions[{ids.get(cid)}])", f"{cw}.id")
            ids[cid] = j
            text_of(comp, "completion", cw)
            _expect("features" in comp, "missing", f"{cw}.features")
            feat = comp["features"]
            _expect(isinstance(feat, list) and len(feat) > 0 and all(_is_number(x) for x in feat),
                    "must be a non-empty list of numbers", f"{cw}.features")
            if d is None:
                d = len(feat)
            _expect(len(feat) == d, f"has {len(feat)} values, expected {d} (as prompts[0].completions[0])",
                    f"{cw}.features")
            score = comp.get("score")
            _expect(score is None or _is_number(score), f"must be a number or null, got {score!r}", f"{cw}.score")
            completion_ids.append(cid)
            features.append(feat)
            scores.append(math.nan if score is None else float(score))
        sizes.append(len(comps))
        local.append(ids)
    seen_prompts = {}
    for i, pid in enumerate(prompt_ids):
        _expect(pid not in seen_prompts, f"duplicate prompt id {pid!r} (also prompts[{seen_prompts.get(pid)}])",
                f"prompts[{i}].id")
        seen_prompts[pid] = i
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])

    def pair_table(name: str, extra: str | None,
                   second: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
        rows = doc.get(name)
        if rows is None:
            return None, None
        shape = "[prompt_id, completion_id, completion_id" + (f", {extra}" if extra else "") \
            + (f"[, {second}]]" if second else "]")
        _expect(isinstance(rows, list), f"must be a list of {shape}", name)
        table = np.zeros((len(rows), 2), dtype=np.int64)
        values = np.ones(len(rows))
        for r, row in enumerate(rows):
            where = f"{name}[{r}]"
            widths = (3,) + ((4,) if extra else ()) + ((5,) if second else ())
            ok_len = isinstance(row, list) and len(row) in widths
            _expect(ok_len, f"must be {shape}", where)
            pid, a, b = row[0], row[1], row[2]
            _expect(isinstance(pid, str) and pid in seen_prompts, f"unknown prompt id {pid!r}", where)
            i = seen_prompts[pid]
            for cid in (a, b):
                _expect(isinstance(cid, str) and cid in local[i],
                        f"completion {cid!r} is not in prompt {pid!r}", where)
            table[r] = (offsets[i] + local[i][a], offsets[i] + local[i][b])
            if len(row) >= 4:
                _expect(_is_number(row[3]), f"{extra} must be a number, got {row[3]!r}", where)
                values[r] = float(row[3])
            if len(row) == 5:
                _expect(row[4] is None or _is_number(row[4]), f"{second} must be a number or null, "
                        f"got {row[4]!r}", where)
                wins[r] = math.nan if row[4] is None else float(row[4])
        return table, values

    labeled_rows = doc.get("labeled")
    wins = np.full(len(labeled_rows) if isinstance(labeled_rows, list) else 0, math.nan)

    pairs, costs = pair_table("pairs", "cost")
    fixed_in, _ = pair_table("fixed_in", None)
    fixed_out, _ = pair_table("fixed_out", None)
    labeled, counts = pair_table("labeled", "labels", "wins")

    groups = []
    raw_groups = doc.get("groups") or []
    _expect(isinstance(raw_groups, list), "must be a list of {name, prompts, budget}", "groups")
    for g, grp in enumerate(raw_groups):
        where = f"groups[{g}]"
        _expect(isinstance(grp, dict) and {"name", "prompts", "budget"} <= set(grp)
                <= {"name", "prompts", "budget", "min_pairs"},
                "must be an object with 'name', 'prompts', 'budget' and optionally 'min_pairs'", where)
        _expect(isinstance(grp["name"], str), "must be a string", f"{where}.name")
        _expect(isinstance(grp["prompts"], list), "must be a list of prompt ids", f"{where}.prompts")
        idx = []
        for pid in grp["prompts"]:
            _expect(isinstance(pid, str) and pid in seen_prompts, f"unknown prompt id {pid!r}", f"{where}.prompts")
            idx.append(seen_prompts[pid])
        groups.append(Group(grp["name"], np.asarray(idx, dtype=np.int64), grp["budget"],
                            grp.get("min_pairs", 0)))

    settings = {key: doc[key] for key in ("name", "ridge", "weights", "max_pairs_per_prompt",
                                          "max_pairs_per_completion", "max_labels_per_pair",
                                          "min_pairs_per_prompt")
                if key in doc and doc[key] is not None}
    if "max_labels_per_pair" in doc and doc["max_labels_per_pair"] is None:
        settings["max_labels_per_pair"] = None
    projection = doc.get("projection")
    rounds = doc.get("rounds") or []
    _expect(isinstance(rounds, list), "must be a list of objects", "rounds")
    posterior = doc.get("posterior")
    post_mean = post_cov = None
    if posterior is not None:
        _expect(isinstance(posterior, dict) and set(posterior) == {"mean", "covariance"},
                "must be an object with exactly 'mean' (d numbers) and 'covariance' (d x d numbers)",
                "posterior")
        post_mean, post_cov = posterior["mean"], posterior["covariance"]
        _expect(isinstance(post_mean, list) and all(_is_number(x) for x in post_mean),
                "must be a list of numbers", "posterior.mean")
        _expect(isinstance(post_cov, list) and all(
            isinstance(row, list) and all(_is_number(x) for x in row) for row in post_cov)
            and len({len(row) for row in post_cov}) <= 1,
            "must be a list of rows of numbers, all of one length", "posterior.covariance")
        post_mean = np.asarray(post_mean, dtype=np.float64)
        post_cov = np.asarray(post_cov, dtype=np.float64).reshape(len(post_cov), -1)
    score_arr = np.asarray(scores)
    return Instance(
        prompt_ids=prompt_ids,  # lists: checked for NUL before NumPy would drop a trailing one
        prompt_offsets=offsets,
        completion_ids=completion_ids,
        features=np.asarray(features, dtype=np.float64),
        scores=None if np.isnan(score_arr).all() else score_arr,
        budget=doc["budget"],
        prompt_max_pairs=np.asarray(own_caps),
        prompt_min_pairs=np.asarray(own_mins),
        pairs=pairs,
        pair_costs=costs,
        fixed_in=fixed_in if fixed_in is not None else np.zeros((0, 2), dtype=np.int64),
        fixed_out=fixed_out if fixed_out is not None else np.zeros((0, 2), dtype=np.int64),
        labeled=labeled if labeled is not None else np.zeros((0, 2), dtype=np.int64),
        labeled_counts=counts,
        groups=tuple(groups),
        labeled_wins=wins if labeled is not None else None,
        prompt_texts=None if not texts["prompt"] or texts["prompt"][0] is None else tuple(texts["prompt"]),
        completion_texts=(None if not texts["completion"] or texts["completion"][0] is None
                          else tuple(texts["completion"])),
        projection=projection,
        rounds=tuple(rounds),
        posterior_mean=post_mean,
        posterior_covariance=post_cov,
        **settings,
    )


def _number(x: float) -> int | float:
    """JSON-friendly number: integers stay integers."""
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


def _instance_to_json(inst: Instance) -> dict[str, Any]:
    prompts = []
    for i in range(inst.n_prompts):
        rows = range(int(inst.prompt_offsets[i]), int(inst.prompt_offsets[i + 1]))
        comps = []
        for r in rows:
            comp: dict[str, Any] = {"id": str(inst.completion_ids[r]),
                                    "features": inst.features[r].tolist()}
            if inst.scores is not None and not math.isnan(inst.scores[r]):
                comp["score"] = float(inst.scores[r])
            if inst.completion_texts is not None:
                comp["text"] = inst.completion_texts[r]
            comps.append(comp)
        prompt: dict[str, Any] = {"id": str(inst.prompt_ids[i])}
        if inst.prompt_texts is not None:
            prompt["text"] = inst.prompt_texts[i]
        prompt["completions"] = comps
        if inst.prompt_max_pairs is not None and math.isfinite(inst.prompt_max_pairs[i]):
            prompt["max_pairs"] = int(inst.prompt_max_pairs[i])
        if inst.prompt_min_pairs is not None and not math.isnan(inst.prompt_min_pairs[i]):
            prompt["min_pairs"] = int(inst.prompt_min_pairs[i])
        prompts.append(prompt)

    def table(arr: np.ndarray, values: np.ndarray | None = None) -> list[list[Any]]:
        rows = inst.pair_ids(arr[:, 0], arr[:, 1])
        if values is not None:
            rows = [row + [_number(v)] for row, v in zip(rows, values)]
        return rows

    doc: dict[str, Any] = {"format": FORMAT, "name": inst.name, "prompts": prompts,
                           "budget": _number(inst.budget), "ridge": inst.ridge,
                           "weights": inst.weights,
                           "max_pairs_per_prompt": inst.max_pairs_per_prompt,
                           "max_pairs_per_completion": inst.max_pairs_per_completion,
                           "max_labels_per_pair": inst.max_labels_per_pair,
                           "pairs": None if inst.pairs is None else table(inst.pairs, inst.pair_costs)}
    if inst.min_pairs_per_prompt is not None:
        doc["min_pairs_per_prompt"] = inst.min_pairs_per_prompt
    if inst.fixed_in.shape[0]:
        doc["fixed_in"] = table(inst.fixed_in)
    if inst.fixed_out.shape[0]:
        doc["fixed_out"] = table(inst.fixed_out)
    if inst.labeled.shape[0]:
        counts = inst.labeled_counts
        if counts is None and inst.labeled_wins is not None:
            counts = np.ones(inst.labeled.shape[0])
        doc["labeled"] = table(inst.labeled, counts)
        if inst.labeled_wins is not None:
            for row, w in zip(doc["labeled"], inst.labeled_wins):
                row.append(None if math.isnan(w) else _number(w))
    if inst.groups:
        doc["groups"] = [{"name": g.name, "prompts": [str(p) for p in inst.prompt_ids[g.prompts]],
                          "budget": _number(g.budget), **({"min_pairs": g.min_pairs} if g.min_pairs else {})}
                         for g in inst.groups]
    if inst.projection is not None:
        doc["projection"] = inst.projection
    if inst.rounds:
        doc["rounds"] = list(inst.rounds)
    if inst.posterior_mean is not None:
        doc["posterior"] = {"mean": inst.posterior_mean.tolist(),
                            "covariance": inst.posterior_covariance.tolist()}
    return doc


def _compact_json(value: Any, indent: str = "") -> str:
    """JSON with one line per small object (a completion, a pair), indented otherwise."""
    flat = json.dumps(value, allow_nan=False)
    if len(flat) <= 100 or not isinstance(value, (list, dict)) or not value:
        return flat
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_compact_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    items = [inner + _compact_json(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + indent + "]"



def read_instance_json(path: Path) -> Instance:
    """Read an instance from a JSON file (errors are attributed to the file by the caller)."""
    try:
        doc = loads(path.read_bytes())
    except JSONError as exc:
        raise InstanceError(exc.reason, field=exc.where) from None
    return _instance_from_json(doc)


def write_instance_json(instance: Instance, path: str | os.PathLike) -> None:
    """Write an instance as JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(_compact_json(_instance_to_json(instance)) + "\n")
