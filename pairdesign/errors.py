"""Exceptions raised by pairdesign.

Every error a user can cause derives from :class:`PairdesignError`; the CLI prints its message
and exits non-zero without a traceback.
"""

from __future__ import annotations


class PairdesignError(Exception):
    """Base class of the errors that bad input or an impossible request can cause."""


class InstanceError(PairdesignError, ValueError):
    """A malformed or inconsistent instance.

    The message names the source (file), the field and the row, e.g.
    ``instances/x.json: prompts[3].completions[2].features: contains NaN``.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.reason = message
        parts = [p for p in (source, field) if p]
        super().__init__(": ".join(parts + [message]))

    def with_source(self, source: str) -> "InstanceError":
        """The same error, attributed to a file."""
        return InstanceError(self.reason, source=source, field=self.field)


class DesignError(InstanceError):
    """A malformed design file, or one that does not fit the instance it is read with; the
    message names the file, the field and the row (``design.json: pairs[4]: ...``)."""

    def with_source(self, source: str) -> "DesignError":
        return DesignError(self.reason, source=source, field=self.field)


class InputError(InstanceError):
    """A malformed pipeline input (generations, labels): the message names the file and the line
    (``gen.jsonl: line 7: completions[2]: missing 'text'``)."""

    def with_source(self, source: str) -> "InputError":
        return InputError(self.reason, source=source, field=self.field)


class InfeasibleError(PairdesignError):
    """The constraints admit no design (e.g. the pairs fixed in exceed the budget)."""


class OptionError(PairdesignError, ValueError):
    """An unknown method, criterion or option, or an option value out of its domain."""


class SolverError(PairdesignError):
    """An external solver (SCIP, Clarabel, HiGHS, ...) failed on a well-formed problem."""
