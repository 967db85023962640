"""SQLModel tables: one schema for the whole LIS. Importing this package registers every table."""

from lis.models.audit import AuditEvent
from lis.models.catalog import Panel, PanelMember, ReferenceRange, TestDefinition
from lis.models.instruments import Instrument, TestCodeMap
from lis.models.journal import MessageAttachment, RawMessage, RawMessageStatus
from lis.models.orders import Order, OrderTest, Specimen
from lis.models.outbox import EmrInbound, OutboxMessage, OutboxResult, OutboxStatus
from lis.models.patients import Encounter, Patient
from lis.models.qc import (
    ControlLot,
    ControlMaterial,
    QcCorrectiveAction,
    QcDecision,
    QcHold,
    QcHoldReason,
    QcHoldState,
    QcRuleSet,
    QcRun,
    QcRunObservation,
    QcTarget,
    QcViolation,
)
from lis.models.reports import SignedReport
from lis.models.results import Result, ResultStatus
from lis.models.types import UTCDateTime, utcnow
from lis.models.users import ApiToken, Role, User
from lis.models.workflow import (
    AutoverificationRuleSet,
    CalculatedInput,
    CriticalNotification,
    DeltaCheckRule,
    ReflexRule,
    ResultEvaluation,
    SectionPolicy,
)

__all__ = [
    "ApiToken", "AuditEvent", "AutoverificationRuleSet", "CalculatedInput", "ControlLot", "ControlMaterial",
    "CriticalNotification", "DeltaCheckRule", "EmrInbound", "Encounter", "Instrument", "MessageAttachment", "Order",
    "OrderTest", "OutboxMessage", "OutboxResult", "OutboxStatus", "Panel", "PanelMember", "Patient",
    "QcCorrectiveAction", "QcDecision", "QcHold", "QcHoldReason", "QcHoldState", "QcRuleSet", "QcRun",
    "QcRunObservation", "QcTarget", "QcViolation", "RawMessage", "RawMessageStatus", "ReferenceRange", "ReflexRule",
    "Result", "ResultEvaluation", "ResultStatus", "Role", "SectionPolicy", "SignedReport", "Specimen",
    "TestCodeMap", "TestDefinition", "UTCDateTime", "User", "utcnow",
]
