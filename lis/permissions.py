"""What each role may do: enforced by the API and the web pages on the server side."""

from __future__ import annotations

from lis.models import Role

_STAFF = (Role.TECHNICIAN, Role.VALIDATOR, Role.MANAGER, Role.ADMIN)

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "results:read": (*_STAFF, Role.CLINICIAN, Role.INTEGRATION),
    "patients:read": (*_STAFF, Role.CLINICIAN, Role.INTEGRATION),
    "patients:write": (*_STAFF, Role.INTEGRATION),
    "orders:read": (*_STAFF, Role.CLINICIAN, Role.INTEGRATION),
    "orders:write": (*_STAFF, Role.INTEGRATION),
    "catalog:read": (*_STAFF, Role.CLINICIAN, Role.INTEGRATION),
    "catalog:write": (Role.MANAGER, Role.ADMIN),
    "instruments:read": _STAFF,
    "raw:read": _STAFF,
    "raw:reprocess": _STAFF,
    "ingest:write": (Role.INTEGRATION, Role.ADMIN),
    "audit:read": (Role.MANAGER, Role.ADMIN),
    "users:write": (Role.ADMIN,),
    "qc:read": (*_STAFF, Role.CLINICIAN),  # QC runs, holds, Levey-Jennings data, status
    "qc:write": _STAFF,  # manual QC observations
    "qc:corrective": (Role.VALIDATOR, Role.MANAGER, Role.ADMIN),  # corrective actions on QC holds
    "qc:config": (Role.MANAGER, Role.ADMIN),  # materials, lots, targets, rule sets
    # result workflow (issue 6)
    "results:validate": _STAFF,  # technical validation, rerun, reject
    "results:release": (Role.VALIDATOR, Role.MANAGER, Role.ADMIN),  # medical release
    "results:amend": (Role.VALIDATOR, Role.MANAGER, Role.ADMIN),  # correction after release
    "results:critical": _STAFF,  # record critical-value notifications
    "specimens:receive": _STAFF,
    "workflow:read": _STAFF,  # rules, policies, simulator, TAT report
    "workflow:configure": (Role.MANAGER, Role.ADMIN),  # autoverification rules, policies, reflex, delta
}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, ())
