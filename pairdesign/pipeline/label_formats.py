"""What one record of an annotation tool's export says was voted, whatever the tool and export.

A vote is an outcome for the task's ``completion_a``: 1 (a won), 0 (b won), 1/2 (a tie). The
shapes read, told apart per record:

- **Label Studio JSON** (``{"data": {ids}, "annotations": [{"id", "result": [...],
  "was_cancelled"}]}``): one vote per annotation that is not cancelled. A ``pairwise`` result is
  the vote (``selected``: ``left`` = a); a ``choices`` result is a tie when its control is the one
  named ``tie_control`` or every value is a tie word (:data:`TIE_WORDS`), the vote of a side when
  it names one side (``left``, ``answer1``, ...); results of every other control (a confidence
  question, a comment, a rating) are ignored and counted. One annotation whose results vote for
  two different outcomes (``choices: ["left", "right"]``, or ``left`` and a tie) is refused.
- **Label Studio JSON-MIN and CSV** (one row per annotation: the task's data keys, Label
  Studio's ``annotation_id``/``annotator``/..., one key per control, e.g. ``"comparison":
  [{"selected": "left"}]``): the same reading of each control's value; the CSV's cells holding
  JSON are parsed.
- **Argilla flattened records** (``to_list(flatten=True)``: ``"preference.responses": [...]``
  with the parallel ``"preference.responses.status"``): only ``submitted`` responses are votes;
  a LabelQuestion answer is an option name, a RankingQuestion answer the option names best
  first (the first wins).
- **Argilla nested records** (``to_list(flatten=False)``: ``"responses": {"preference":
  [{"value", "user_id"}]}``, ids under ``metadata``): read only when each response carries its
  ``status``; Argilla 2.x writes none there, and a draft cannot be told from a submitted answer,
  so such a file is refused with a pointer to the flattened export.
- **Plain records** (``winner``, or ``preference``, ``label``, ``choice``): a vote, or a list of
  votes (one per annotator).
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from .. import _jsonio as jsonio

Fail = Callable[..., NoReturn]
"""fail(message, field="") raises the reader's InputError naming the file and the record."""

VOTES: dict[str, float] = {
    **dict.fromkeys(("a", "answer1", "response1", "responsea", "left", "first", "1"), 1.0),
    **dict.fromkeys(("b", "answer2", "response2", "responseb", "right", "second", "2"), 0.0),
}
TIE_WORDS = frozenset({"tie", "draw", "equal", "same", "both", "neither", "none", "equivalent",
                       "no preference", "both equal", "equally good", "equally bad", "both good",
                       "both bad", "about the same", "cannot decide", "can't decide"})
PLAIN_FIELDS = ("winner", "preference", "label", "choice")
ARGILLA_FLAT = "preference.responses"
# keys of an exported task (pairdesign's ids and texts) and Label Studio's own row keys: a
# JSON-MIN / CSV row's other keys are its controls
TASK_KEYS = frozenset({"prompt", "answer1", "answer2", "response1", "response2", "response_a",
                       "response_b", "task_id", "design", "instance", "rank", "gain", "weight",
                       "prompt_id", "completion_a", "completion_b"})
STUDIO_ROW_KEYS = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at",
                             "lead_time", "drafts", "predictions", "meta", "agreement"})

_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother, _short.maxlist = 3, 60, 60, 4


def short(value: Any) -> str:
    """A short printable form of any JSON value (bounded depth and length)."""
    return _short.repr(value)


def _word(value: Any) -> str:
    return " ".join(str(value).strip().lower().replace("_", " ").replace("-", " ").split())


def vote_of(value: Any, fail: Fail, field: str = "winner") -> float:
    """The outcome of one vote word (a / b / tie and their synonyms); refuses others."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        fail(f"cannot read a vote from {short(value)}", field)
    word = _word(value)
    if word in TIE_WORDS:
        return 0.5
    outcome = VOTES.get(word.replace(" ", ""))
    if outcome is None:
        fail(f"unknown vote {value!r}; use a / b / tie (or answer1 / answer2, response1 / response2, "
             "left / right)", field)
    return outcome


@dataclass
class RecordVotes:
    """The votes of one record and what was left out of them."""

    votes: list[float]
    annotation: str | None = None
    """Label Studio's ``annotation_id`` of a JSON-MIN / CSV row (one row per annotation)."""
    ignored: int = 0
    """Results of controls that are not the comparison (comments, confidence, ratings)."""
    cancelled: int = 0
    """Label Studio annotations cancelled (skipped) by the annotator."""
    not_submitted: int = 0
    """Argilla responses left as draft or discarded."""


def _choices(control: Any, values: list[Any], tie_control: str | None, fail: Fail,
             field: str) -> float | None:
    """A ``choices`` answer: a tie, one side's vote, or None (another control's answer)."""
    if not values:
        return None
    if tie_control is not None and control == tie_control:
        return 0.5
    words = [_word(v) for v in values if isinstance(v, (str, int)) and not isinstance(v, bool)]
    if len(words) != len(values):
        return None
    outcomes = {0.5 if w in TIE_WORDS else VOTES.get(w.replace(" ", "")) for w in words}
    if None in outcomes:
        return None if outcomes == {None} else fail(
            f"the answer {short(values)} mixes a vote with other choices", field)
    if len(outcomes) > 1:
        fail(f"one annotation votes for {' and '.join(map(repr, values))}: opposite votes in one "
             "answer are refused (split the answer, or give each annotator their own annotation)", field)
    return outcomes.pop()


def _one_vote(outcomes: list[float], values: list[Any], fail: Fail, field: str) -> list[float]:
    if len(set(outcomes)) > 1:
        fail(f"one annotation votes for {' and '.join(short(v) for v in values)}: opposite votes in "
             "one annotation are refused", field)
    return outcomes[:1]


def _studio_annotation(ann: Any, n: int, tie_control: str | None, fail: Fail, out: RecordVotes) -> None:
    field = f"annotations[{n}]"
    if not isinstance(ann, dict):
        fail("must be an object (a Label Studio annotation)", field)
    if ann.get("was_cancelled"):
        out.cancelled += 1
        return
    results = ann.get("result", [])
    if not isinstance(results, list):
        fail("must be a list", field + ".result")
    outcomes: list[float] = []
    values: list[Any] = []
    for m, res in enumerate(results):
        where = f"{field}.result[{m}]"
        if not isinstance(res, dict) or not isinstance(res.get("value", {}), dict):
            fail("must be an object with an object 'value' (a Label Studio result)", where)
        kind, value = res.get("type"), res.get("value", {})
        if kind == "pairwise":
            outcomes.append(vote_of(value.get("selected"), fail, where + ".value.selected"))
            values.append(value.get("selected"))
        elif kind == "choices":
            choices = value.get("choices")
            if not isinstance(choices, list):
                fail("must be a list", where + ".value.choices")
            outcome = _choices(res.get("from_name"), choices, tie_control, fail, where + ".value.choices")
            if outcome is None:
                out.ignored += 1
            else:
                outcomes.append(outcome)
                values.append(choices)
        else:
            out.ignored += 1
    out.votes += _one_vote(outcomes, values, fail, field)


def _studio_row_control(key: str, value: Any, tie_control: str | None, fail: Fail) -> float | None | str:
    """A JSON-MIN / CSV control value: a vote, None (no answer) or "ignored"."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            value = jsonio.loads(value)  # the CSV export writes structured answers as JSON
        except jsonio.JSONError as exc:
            fail(f"a cell that starts like JSON is not readable JSON ({exc})", key)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, dict) and "selected" in value:
        return vote_of(value["selected"], fail, key)
    if isinstance(value, list) and all(isinstance(v, dict) and "selected" in v for v in value):
        outs = [vote_of(v["selected"], fail, key) for v in value]
        return _one_vote(outs, [v["selected"] for v in value], fail, key)[0]
    if isinstance(value, dict) and isinstance(value.get("choices"), list):
        value = value["choices"]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, list):
        outcome = _choices(key, value, tie_control, fail, key)
        return "ignored" if outcome is None else outcome
    return "ignored"


def _argilla_answer(value: Any, fail: Fail, field: str) -> float | None:
    """One Argilla response value: a label, or a ranking (names best first, or rank dicts)."""
    if value is None:
        return None
    if isinstance(value, list):
        if value and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            return vote_of(value[0], fail, field)  # RankingQuestion (2.x): best first
        if value and all(isinstance(v, dict) and "rank" in v and "value" in v for v in value):
            try:
                ranks = [float(v["rank"]) for v in value]
            except (TypeError, ValueError):
                fail(f"cannot read a ranking from {short(value)}", field)
            top = [v["value"] for v, r in zip(value, ranks) if r == min(ranks)]
            return vote_of(top[0], fail, field) if len(top) == 1 else 0.5
        fail(f"cannot read a vote from {short(value)}", field)
    return vote_of(value, fail, field)


def _argilla_flat(rec: dict, key: str, fail: Fail, out: RecordVotes) -> None:
    responses, status = rec[key], rec.get(key + ".status")
    if responses is None:
        return
    if not isinstance(responses, list):
        fail("must be a list of responses (Argilla's flattened records)", key)
    if status is None:
        fail(f"no '{key}.status': a draft or discarded response cannot be told from a submitted one; "
             "export the records with argilla's to_list(flatten=True), which writes the status list", key)
    if not isinstance(status, list) or len(status) != len(responses):
        fail(f"must be a list as long as '{key}' ({len(responses)})", key + ".status")
    for n, (value, state) in enumerate(zip(responses, status)):
        if state != "submitted":
            out.not_submitted += 1
            continue
        outcome = _argilla_answer(value, fail, f"{key}[{n}]")
        if outcome is not None:
            out.votes.append(outcome)


def _argilla_nested(responses: dict, question: str, fail: Fail, out: RecordVotes) -> None:
    answers = responses.get(question)
    if answers is None:
        return
    field = f"responses.{question}"
    if not isinstance(answers, list):
        fail("must be a list of responses", field)
    for n, ans in enumerate(answers):
        if not isinstance(ans, dict) or "value" not in ans:
            fail("must be an object with a 'value' (an Argilla response)", f"{field}[{n}]")
        if "status" not in ans:
            fail("Argilla's nested records carry no response status, so a draft or discarded answer "
                 "cannot be told from a submitted one: export with to_list(flatten=True), which "
                 "writes 'preference.responses.status'", f"{field}[{n}]")
        if ans["status"] != "submitted":
            out.not_submitted += 1
            continue
        outcome = _argilla_answer(ans["value"], fail, f"{field}[{n}].value")
        if outcome is not None:
            out.votes.append(outcome)


def _plain(value: Any, fail: Fail, field: str) -> list[float]:
    """A plain vote field: one vote, or a list of votes (one per annotator)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [o for n, v in enumerate(value) for o in _plain_one(v, fail, f"{field}[{n}]")]
    return _plain_one(value, fail, field)


def _plain_one(value: Any, fail: Fail, field: str) -> list[float]:
    if value is None:
        return []
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list):
            outcome = _choices(None, value["choices"], None, fail, field)
            return [] if outcome is None else [outcome]
        for key in ("selected", "value"):
            if key in value:
                outcome = _argilla_answer(value[key], fail, field)
                return [] if outcome is None else [outcome]
        fail(f"cannot read a vote from {short(value)}", field)
    if isinstance(value, list):
        outcome = _argilla_answer(value, fail, field)
        return [] if outcome is None else [outcome]
    return [vote_of(value, fail, field)]


def record_votes(rec: dict, fail: Fail, *, winner_field: str | None = None,
                 tie_control: str | None = None) -> RecordVotes:
    """The votes of one exported record (any of the shapes in the module docstring)."""
    out = RecordVotes([])
    nested = rec.get("responses") if isinstance(rec.get("responses"), dict) else None
    if winner_field is not None:
        if winner_field in rec and winner_field.endswith(".responses"):
            _argilla_flat(rec, winner_field, fail, out)
        elif winner_field in rec:
            out.votes += _plain(rec[winner_field], fail, winner_field)
        elif nested is not None and winner_field in nested:
            _argilla_nested(nested, winner_field, fail, out)
        elif isinstance(rec.get("data"), dict) and winner_field in rec["data"]:
            out.votes += _plain(rec["data"][winner_field], fail, winner_field)
        else:
            fail(f"missing '{winner_field}' (the field named by --winner-field)")
        return out
    if "annotations" in rec:
        anns = rec["annotations"]
        if not isinstance(anns, list):
            fail("must be a list (Label Studio's annotations)", "annotations")
        for n, ann in enumerate(anns):
            _studio_annotation(ann, n, tie_control, fail, out)
        return out
    if ARGILLA_FLAT in rec:
        _argilla_flat(rec, ARGILLA_FLAT, fail, out)
        out.ignored += sum(1 for k in rec if k.endswith(".responses") and k != ARGILLA_FLAT)
        return out
    if nested is not None:
        if not nested:  # a record nobody answered
            return out
        questions = ["preference"] if "preference" in nested else list(nested)
        if len(questions) != 1:
            fail(f"several questions {questions}: name the preference question with --winner-field",
                 "responses")
        _argilla_nested(nested, questions[0], fail, out)
        out.ignored += len(nested) - 1
        return out
    plain = next((k for k in PLAIN_FIELDS if k in rec), None)
    if plain is not None:
        out.votes += _plain(rec[plain], fail, plain)
        return out
    if "annotation_id" in rec or "annotator" in rec:  # Label Studio JSON-MIN or CSV: one row per annotation
        out.annotation = None if rec.get("annotation_id") in (None, "") else str(rec["annotation_id"])
        outcomes, values = [], []
        for key, value in rec.items():
            if key in TASK_KEYS or key in STUDIO_ROW_KEYS:
                continue
            got = _studio_row_control(key, value, tie_control, fail)
            if got == "ignored":
                out.ignored += 1
            elif got is not None:
                outcomes.append(got)
                values.append(value)
        out.votes += _one_vote(outcomes, values, fail, "annotation")
        return out
    fail(f"no vote: expected Label Studio's 'annotations' (JSON export) or 'annotation_id' (JSON-MIN, "
         f"CSV), Argilla's '{ARGILLA_FLAT}', or one of {list(PLAIN_FIELDS)} (or name it with "
         "--winner-field)")
