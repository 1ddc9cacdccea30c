"""Methods that choose pairs; each module holds one method family, all return a Result."""

from .base import DEFAULT_METHOD, METHODS
from .result import Result, SolutionStatus, TerminationCondition

__all__ = ["DEFAULT_METHOD", "METHODS", "Result", "SolutionStatus", "TerminationCondition"]
