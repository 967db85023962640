"""Result workflow (issue 6): evaluation on arrival, autoverification (CLSI AUTO10) and its simulator
(AUTO15), validation states, critical values, release with hooks and ``ResultReleased``, reflex and
calculated tests, turnaround times.

Modules: ``ranges`` (reference-range choice), ``flags`` (L/H/LL/HH/A, plausibility, units, delta),
``autoverify`` (the rule checks), ``evaluation`` (batched evaluation), ``actions`` (state machine),
``critical``, ``release``, ``reflex``, ``calculated``, ``simulator``, ``tat``, ``policies`` (rules as data),
``service`` (the facade), ``wiring`` (composition root).
"""

from lis.services.workflow.errors import (
    ActionNotPermitted,
    InvalidDefinition,
    NotFound,
    TransitionRefused,
    VersionConflict,
    WorkflowError,
)
from lis.services.workflow.release import ReleaseHook
from lis.services.workflow.service import EvaluationSummary, WorkflowService

__all__ = [
    "ActionNotPermitted", "EvaluationSummary", "InvalidDefinition", "NotFound", "ReleaseHook",
    "TransitionRefused", "VersionConflict", "WorkflowError", "WorkflowService",
]
