"""The annotation project the exported tasks fit: Label Studio's labeling config, Argilla's dataset
settings. ``export --to labelstudio|argilla`` writes it beside the tasks.

- Label Studio: the pairwise template (a ``Text`` ``prompt``, a ``Pairwise`` control
  ``comparison`` over the ``Text`` objects ``answer1`` and ``answer2``), reading the task keys
  ``$prompt``, ``$answer1``, ``$answer2`` that the export writes.
- Argilla: the settings JSON of ``rg.Settings`` (as ``Settings.to_json`` writes it; load it with
  ``rg.Settings.from_json(path)``): text fields ``prompt``, ``response1``, ``response2``; a
  ``LabelQuestion`` ``preference`` with labels response1 / response2 / tie; metadata properties
  for every id a task carries (Argilla drops record keys its dataset does not declare, and the
  labels cannot be matched back without them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABEL_STUDIO_CONFIG = """\
<View>
  <!-- pairdesign: the pairwise template its Label Studio tasks fit (task keys prompt, answer1, answer2) -->
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Click the better answer"/>
  <Pairwise name="comparison" toName="answer1,answer2"/>
  <View style="display: flex; gap: 1em">
    <View style="flex: 1">
      <Header value="Answer 1"/>
      <Text name="answer1" value="$answer1"/>
    </View>
    <View style="flex: 1">
      <Header value="Answer 2"/>
      <Text name="answer2" value="$answer2"/>
    </View>
  </View>
</View>
"""


def _field(name: str, title: str) -> dict[str, Any]:
    return {"name": name, "title": title, "required": True, "description": None, "type": "text",
            "settings": {"type": "text", "use_markdown": False}}


def _metadata(name: str, kind: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"visible_for_annotators": False, "type": kind}
    settings.update({"values": None} if kind == "terms" else {"min": None, "max": None})
    return {"name": name, "title": name, "settings": settings, "visible_for_annotators": False}


def argilla_settings(*, fractional: bool = False) -> dict[str, Any]:
    """The Argilla 2.x dataset settings of the exported records (fractional designs carry
    ``weight`` where integer designs carry ``gain``)."""
    return {
        "guidelines": "Read the prompt and both responses; choose the better response (tie if neither "
                      "is better).",
        "allow_extra_metadata": False,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "fields": [_field("prompt", "Prompt"), _field("response1", "Response 1"),
                   _field("response2", "Response 2")],
        "questions": [{
            "name": "preference", "title": "Which response is better?", "description": None,
            "required": True, "type": "label_selection",
            "settings": {"type": "label_selection", "visible_options": 3,
                         "options": [{"value": v, "text": t, "description": None} for v, t in
                                     (("response1", "Response 1"), ("response2", "Response 2"),
                                      ("tie", "Tie"))]}}],
        "metadata": [_metadata(name, "terms") for name in
                     ("design", "instance", "prompt_id", "completion_a", "completion_b")]
                    + [_metadata("rank", "integer"), _metadata("weight" if fractional else "gain", "float")],
        "vectors": [],
        "mapping": None,
    }


def setup_path(tasks: str | Path, fmt: str) -> Path | None:
    """Where the project setup of a task file goes: ``TASKS.labelstudio.xml`` or
    ``TASKS.argilla.json`` beside it (None for plain JSONL tasks)."""
    tasks = Path(tasks)
    suffix = {"labelstudio": ".labelstudio.xml", "argilla": ".argilla.json"}.get(fmt)
    return None if suffix is None else tasks.with_name(tasks.stem + suffix)


def setup_text(fmt: str, *, fractional: bool = False) -> str:
    """The setup file's text for a task format (``labelstudio`` or ``argilla``)."""
    if fmt == "labelstudio":
        return LABEL_STUDIO_CONFIG
    if fmt == "argilla":
        return json.dumps(argilla_settings(fractional=fractional), indent=1) + "\n"
    raise ValueError(f"no project setup for {fmt!r}")
