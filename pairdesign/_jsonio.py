"""Safe JSON reading: the one function every pairdesign reader parses JSON with.

:func:`loads` is :func:`json.loads` made fit for files from elsewhere:

- strict UTF-8 (bytes that are not UTF-8 are refused, with the byte offset);
- ``NaN``, ``Infinity`` and ``-Infinity`` literals, and numbers beyond the float range
  (``1e400``, which Python would read as infinity), are refused with their line and column;
- nesting deeper than ``max_depth`` levels (default :data:`MAX_DEPTH`) is refused, before any
  reader recurses into it (Python's parser itself raises ``RecursionError`` near 1,000 levels);
- strings holding a lone surrogate (``"\\ud800"``, valid JSON but not text: it cannot be written
  as UTF-8) are refused, naming the path of the string (``completions[2].text``).

Every refusal is a :class:`JSONError` (a ``ValueError``) whose message says what is wrong and
where (``line 3 column 7``, or the path); the reader turns it into its own
:class:`~pairdesign.errors.PairdesignError` naming the file and the line or record, e.g.
``raise InputError(str(exc), source=str(path), field=f"line {n}") from None``.

The checks cost little on ordinary data: the depth is only walked when the text holds more
opening brackets than ``max_depth``, and strings are only searched for surrogates when the text
holds a ``\\ud8``-``\\udf`` escape.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""The deepest nesting any pairdesign file needs is about 6; 64 leaves room for other tools."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")

__all__ = ["MAX_DEPTH", "JSONError", "find_bad_text", "loads", "loads_line"]


class JSONError(ValueError):
    """Text that pairdesign does not read as JSON: ``reason`` says what, ``where`` where
    (``line 3 column 7``, or the path of a value such as ``completions[2].text``; None when the
    whole text is at fault); ``str()`` gives ``"where: reason"``."""

    def __init__(self, reason: str, where: str | None = None):
        self.reason, self.where = reason, where
        super().__init__(f"{where}: {reason}" if where else reason)


class _BadNumber(Exception):
    def __init__(self, token: str, reason: str):
        self.token, self.reason = token, reason


def _reject_constant(token: str) -> float:
    raise _BadNumber(token, "is not valid JSON (use finite numbers)")


def _finite_float(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(token, "is beyond the float range (about 1.8e308)")
    return value


def _float_range_int(token: str) -> int:
    value = int(token)
    if len(token) > 300 and abs(value) > _FLOAT_MAX:
        raise _BadNumber(token, "is beyond the float range (about 1.8e308)")
    return value


_FLOAT_MAX = int(1.7976931348623157e308)

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?(?:NaN|Infinity)|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)')


def _where(text: str, token: str) -> str | None:
    """``line L column C`` of the first ``token`` outside strings in ``text``."""
    for match in _TOKENS.finditer(text):
        if match.group(1) == token:
            start = match.start(1)
            line = text.count("\n", 0, start) + 1
            return f"line {line} column {start - (text.rfind(chr(10), 0, start) + 1) + 1}"
    return None


def _path(parts: list[Any]) -> str:
    """``completions[2].text``; a long path is shortened in the middle."""
    if len(parts) > 8:
        return _path(parts[:4]) + "..." + _path(parts[-2:]).lstrip(".")
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _too_deep(value: Any, max_depth: int) -> list[Any] | None:
    """The path to the first container nested deeper than ``max_depth``, or None (iterative)."""
    stack: list[tuple[Any, int, list[Any]]] = [(value, 1, [])]
    while stack:
        node, depth, path = stack.pop()
        if depth > max_depth:
            return path
        if isinstance(node, dict):
            stack.extend((v, depth + 1, path + [k]) for k, v in node.items()
                         if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1, path + [i]) for i, v in enumerate(node)
                         if isinstance(v, (dict, list)))
    return None


def find_bad_text(value: Any) -> tuple[str, str] | None:
    """``(path, problem)`` of the first string (or key) in ``value`` that is not text pairdesign
    can store: a lone surrogate (cannot be encoded as UTF-8). None when all are fine."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                return _path(path), (f"holds a lone surrogate {node[exc.start]!r} at character "
                                     f"{exc.start} (not text; cannot be written as UTF-8)")
        elif isinstance(node, dict):
            for k, v in node.items():
                stack.append((k, path + [k]))
                stack.append((v, path + [k]))
        elif isinstance(node, list):
            stack.extend((v, path + [i]) for i, v in enumerate(node))
    return None


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document (strict UTF-8, finite numbers, bounded depth, no lone surrogates).

    Raises :class:`JSONError` naming the line and column (syntax), the byte (encoding) or the
    path of the value (depth, surrogates).
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(f"not UTF-8 (byte {exc.start}: {exc.reason})") from None
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                           parse_int=_float_range_int)
    except _BadNumber as exc:
        shown = exc.token if len(exc.token) <= 24 else exc.token[:20] + "..."
        raise JSONError(f"{shown} {exc.reason}", _where(text, exc.token)) from None
    except json.JSONDecodeError as exc:
        raise JSONError(f"not valid JSON ({exc.msg})", f"line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JSONError(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise JSONError(f"not valid JSON ({str(exc).split(';')[0]})") from None
    if text.count("[") + text.count("{") > max_depth:
        path = _too_deep(value, max_depth)
        if path is not None:
            raise JSONError(f"nested deeper than {max_depth} levels", _path(path))
    if _SURROGATE_ESCAPE.search(text) or not text.isascii() and _has_surrogate(text):
        bad = find_bad_text(value)
        if bad is not None:
            raise JSONError(bad[1], bad[0])
    return value


def loads_line(raw: str | bytes | bytearray, number: int, *, max_depth: int = MAX_DEPTH) -> Any:
    """One line of a JSONL file, as :func:`loads`; a :class:`JSONError` names the line
    (``where`` is ``line N``, or ``line N: completions[2].text`` for a value) and gives the
    column of a syntax error in the reason."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).rstrip(b"\r\n")
    else:
        raw = raw.rstrip("\r\n")
    try:
        return loads(raw, max_depth=max_depth)
    except JSONError as exc:
        where, reason = exc.where, exc.reason
        if where is not None and where.startswith("line 1 column "):
            reason = f"{reason.rstrip(')')}, column {where[len('line 1 column '):]})" \
                if reason.endswith(")") else f"{reason} (column {where[len('line 1 column '):]})"
            where = None
        raise JSONError(reason, f"line {number}" + (f": {where}" if where else "")) from None


def _has_surrogate(text: str) -> bool:
    """Whether a str (not decoded from bytes) holds a surrogate code point itself."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
