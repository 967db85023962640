"""Errors of the QC service, each with a message a technician or manager can act on.

Bad data (an unknown rule, SD ≤ 0, a non-numeric value...) is :class:`qc.model.QcInputError`; these add
"does not exist" and "conflicts with what is stored". The API maps them to 422, 404 and 409.
"""

from __future__ import annotations


class QcNotFound(LookupError):
    """A material, lot, target, run or hold that does not exist."""


class QcConflict(RuntimeError):
    """The request conflicts with stored QC data (duplicate code, hold already lifted, run already evaluated)."""
