"""SQLModel tables: one schema for the whole LIS. Importing this package registers every table."""

from lis.models.audit import AuditEvent
from lis.models.catalog import Panel, PanelMember, ReferenceRange, TestDefinition
from lis.models.instruments import Instrument, TestCodeMap
from lis.models.journal import MessageAttachment, RawMessage, RawMessageStatus
from lis.models.orders import Order, OrderTest, Specimen
from lis.models.patients import Encounter, Patient
from lis.models.results import Result, ResultStatus
from lis.models.types import UTCDateTime, utcnow
from lis.models.users import ApiToken, Role, User

__all__ = [
    "ApiToken", "AuditEvent", "Encounter", "Instrument", "MessageAttachment", "Order", "OrderTest", "Panel",
    "PanelMember", "Patient", "RawMessage", "RawMessageStatus", "ReferenceRange", "Result", "ResultStatus",
    "Role", "Specimen", "TestCodeMap", "TestDefinition", "UTCDateTime", "User", "utcnow",
]
