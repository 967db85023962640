"""Domain errors of the result workflow; the API maps them to 404 / 409 / 403 / 422 with the message as
``detail``. Messages say what a technician or validator can do about it."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base of every result-workflow error."""


class NotFound(WorkflowError):
    """The result, order, specimen or rule does not exist (HTTP 404)."""


class TransitionRefused(WorkflowError):
    """The action is not allowed in the result's current state (HTTP 409): wrong state, held by QC,
    critical value not notified, two-level validation rule."""


class VersionConflict(TransitionRefused):
    """Someone else changed the result since the caller read it (optimistic version check, HTTP 409)."""


class ActionNotPermitted(WorkflowError):
    """The user's role may not perform the action (HTTP 403)."""


class InvalidDefinition(WorkflowError):
    """Bad input (a rule definition, a missing reason): HTTP 422, the message starts with the field name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
