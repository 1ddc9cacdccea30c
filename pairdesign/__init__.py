"""pairdesign: which comparison pairs to send for human preference labeling.

Budget-constrained optimal experimental design for preference post-training (DPO, reward
modelling): choose the pairs whose labels carry the most information (log det, A, or a
policy-gap criterion) about the reward model that training will estimate.

    >>> import pairdesign
    >>> inst = pairdesign.load_instance("instances/small.json")       # doctest: +SKIP
    >>> result = pairdesign.solve(inst, method="greedy", criterion="D")  # doctest: +SKIP
    >>> result.save("design.json")                                      # doctest: +SKIP
"""

from .design import Design, load_design
from .errors import DesignError, InfeasibleError, InstanceError, OptionError, PairdesignError, SolverError
from .fit import Fit, fit_bradley_terry
from .generate import Synthetic, synthetic_instance
from .information import Criterion, information_matrix, objective, policy_covariance
from .instance import Group, Instance, load_instance, save_instance
from .solve import solve
from .solvers.base import METHODS
from .solvers.result import Result, SolutionStatus, TerminationCondition

__version__ = "0.1.0"

__all__ = [
    "Criterion",
    "Design",
    "DesignError",
    "Fit",
    "Group",
    "InfeasibleError",
    "Instance",
    "InstanceError",
    "METHODS",
    "OptionError",
    "PairdesignError",
    "Result",
    "SolutionStatus",
    "SolverError",
    "Synthetic",
    "TerminationCondition",
    "fit_bradley_terry",
    "information_matrix",
    "load_design",
    "load_instance",
    "objective",
    "policy_covariance",
    "save_instance",
    "solve",
    "synthetic_instance",
]
