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
}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, ())
