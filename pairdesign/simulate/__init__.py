"""The downstream study (DESIGN.md section 7): a synthetic DPO world with an exact policy gap,
the designs compared, and the label savings."""

from .designs import DesignSpec, run_design
from .study import StudyConfig, compute_savings, labels_to_reach, load_config, run_study, write_outputs
from .world import Labeler, Setting, World, fit_policy, make_world, objective_J, policy_gap

__all__ = ["DesignSpec", "Labeler", "Setting", "StudyConfig", "World", "compute_savings", "fit_policy",
           "labels_to_reach", "load_config", "make_world", "objective_J", "policy_gap", "run_design",
           "run_study", "write_outputs"]
