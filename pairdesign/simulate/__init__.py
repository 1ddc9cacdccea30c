"""The downstream study (docs/design.md section 7): a synthetic DPO world with an exact policy gap,
the designs compared, and the label savings."""

from .ceiling import first_order_gap, run_ceiling, savings_ceiling, variance_bound
from .designs import DesignSpec, run_design
from .study import StudyConfig, compute_savings, labels_to_reach, load_config, run_study, write_outputs
from .world import Labeler, Setting, World, fit_policy, make_world, objective_J, policy_gap

__all__ = ["DesignSpec", "Labeler", "Setting", "StudyConfig", "World", "compute_savings", "first_order_gap",
           "fit_policy", "labels_to_reach", "load_config", "make_world", "objective_J", "policy_gap",
           "run_ceiling", "run_design", "run_study", "savings_ceiling", "variance_bound", "write_outputs"]
