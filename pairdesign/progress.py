"""A small progress bar on standard error, drawn only for a person at a terminal.

``Progress(total, label, enabled=True)`` draws ``label [#####.....]  45%  4,500/10,000  3.2 s`` on
one line, redrawn at most every 0.1 s, when ``enabled`` and the stream is a TTY; otherwise it
does nothing (scripts, pipes, ``--quiet``). No dependency, no global state.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import TextIO


class Progress:
    """Count work done towards ``total`` units; use as a context manager (clears its line)."""

    def __init__(self, total: float, label: str, *, enabled: bool = True,
                 stream: TextIO | None = None, width: int = 30, interval: float = 0.1):
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.active = bool(enabled and callable(isatty) and isatty())
        self.total = max(float(total), 0.0)
        self.label = label
        self.width = width
        self.interval = interval
        self.done = 0.0
        self.start = time.perf_counter()
        self._drawn = 0.0

    def __enter__(self) -> "Progress":
        self._draw(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, amount: float = 1.0) -> None:
        """Record ``amount`` more units done."""
        self.done += amount
        self._draw()

    def update(self, done: float) -> None:
        """Set the units done so far."""
        self.done = float(done)
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.active:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < self.interval:
            return
        self._drawn = now
        share = min(self.done / self.total, 1.0) if self.total > 0 else 0.0
        bar = _bar(share, self.width)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%}  {self.done:,.0f}/{self.total:,.0f}"
                          f"  {now - self.start:.1f} s")
        self.stream.flush()

    def close(self) -> None:
        """Erase the bar (the line is left clean for the next message)."""
        self.active = _erase(self.stream, self.active)


class LogBar(logging.Handler):
    """The solver's progress log drawn as one bar line on a terminal (``pairdesign solve``).

    Progress records (INFO) redraw ``label [####....] 45%  12.3 s  <latest message>``; the share
    is the record's ``fraction`` (a method that knows it, e.g. labels placed / budget), else the
    share of the time limit used, else the bar is left empty and only the message moves.
    Warnings and errors are printed on their own lines. Inactive (and silent) unless the stream
    is a terminal.
    """

    def __init__(self, label: str, time_limit: float | None = None, *, stream: TextIO | None = None,
                 width: int = 24):
        super().__init__(level=logging.INFO)
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.active = bool(callable(isatty) and isatty())
        self.label, self.time_limit, self.width = label, time_limit, width
        self.start = time.perf_counter()
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        if not self.active:
            return
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.stream.write("\r\033[K" + message + "\n")
        else:
            self.text = message.split("] ", 1)[-1]  # drop the "[  1.23s] " stamp: the bar has one
        elapsed = time.perf_counter() - self.start
        fraction = getattr(record, "fraction", None)
        if fraction is None and self.time_limit:
            fraction = elapsed / self.time_limit
        if fraction is None:
            bar, share = _bar(0.0, self.width), "    "
        else:
            f = min(max(float(fraction), 0.0), 1.0)
            bar, share = _bar(f, self.width), f"{f:4.0%}"
        line = f"{self.label} [{bar}] {share} {elapsed:6.1f} s  {self.text}"
        columns = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r\033[K" + line[: max(columns - 1, 20)])
        self.stream.flush()

    def close(self) -> None:
        self.active = _erase(self.stream, self.active)
        super().close()


def _bar(share: float, width: int) -> str:
    filled = int(round(share * width))
    return "#" * filled + "." * (width - filled)


def _erase(stream: TextIO, active: bool) -> bool:
    """Clear the bar's line if one is drawn; returns the new (inactive) state."""
    if active:
        stream.write("\r\033[K")
        stream.flush()
    return False
