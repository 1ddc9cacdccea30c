"""Atomic file output: write to a temporary file beside the target, then rename.

The temporary file is ``.NAME.PID.RANDOM.tmp`` in the target's folder (hidden, the writer's
process id in its name). It never outlives its write:

- on any exception, ``KeyboardInterrupt`` included, it is removed and the target is untouched;
- on SIGTERM the CLI turns the signal into an exception (:func:`terminate_as_exception`), so the
  same clean-up runs;
- a process killed outright (SIGKILL, power loss) runs nothing: the next write of the same target
  removes the temporary files of that target whose process is no longer running
  (:func:`remove_stale_temporaries`). Files of a live writer are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write", "remove_stale_temporaries", "terminate_as_exception"]


def _prefix(target: Path) -> str:
    return f".{target.name}."


def _running(pid: int) -> bool:
    """Whether a process with this id exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove ``.NAME.PID.*.tmp`` files left beside ``path`` by writers that no longer run.

    Returns the files removed. Temporary files without a process id in their name (written by
    older versions) are left alone, as is everything else in the folder.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    prefix = _prefix(target)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or _running(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
            removed.append(directory / name)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    On any exception (``KeyboardInterrupt`` included) the temporary file is removed and ``path``
    is left untouched, so a half-written output never appears. Temporary files of this target
    left by killed writers are removed first.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f"{_prefix(target)}{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Terminated(SystemExit):
    """SIGTERM, raised where the program was so that clean-up (``finally``) runs."""


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises :class:`Terminated` (exit status 143)
    instead of ending the process at once, so temporary files are removed; the previous
    handler is restored on exit."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
