"""The labeling pipeline around the solver: import generations, export labeling tasks, read
labels back (a TRL preference dataset, and the labels stored in the instance), design the next
round on a refit Bradley-Terry / DPO model.

Every step reads and writes files whose rows carry the ids of the instance (prompt id,
completion ids) and of the design (a fingerprint), so that labels can always be matched back.
"""

from .importer import FieldNames, import_generations, reduce_embeddings
from .labels import Label, LabelSet, apply_labels, read_labels, write_preference_dataset
from .rounds import RoundResult, next_round
from .tasks import TASK_FORMATS, design_id, instance_fingerprint, order_tasks, write_tasks

__all__ = [
    "FieldNames",
    "Label",
    "LabelSet",
    "RoundResult",
    "TASK_FORMATS",
    "apply_labels",
    "design_id",
    "import_generations",
    "instance_fingerprint",
    "next_round",
    "order_tasks",
    "read_labels",
    "reduce_embeddings",
    "write_preference_dataset",
    "write_tasks",
]
