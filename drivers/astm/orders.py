"""Answers to ASTM host queries: the orders the LIS sends to an analyser (LIS2-A2 H, P, O..., L).

LIS2-A2 host query (request information record): an analyser sends ``H, Q, L``; the LIS answers in a
new transfer (the LIS becomes the sender) with ``H, P, O..., L``: one P/O group per specimen, O-5
listing the tests as repeats of the universal test id with the instrument code in the profile's test-code component.

Unknown specimens get the "no information" answer. Two forms exist in LIS2-A2; the profile chooses with
``extra.no_order_reply``:

* ``"order"`` (default): ``H, P, O, L`` where the O record carries the specimen id, no tests, and
  O-26 report type ``Y`` ("no order on record for this test", LIS2-A2 O-26 report types), which analysers that
  query per specimen accept as "run nothing".
* ``"query"``: ``H, Q, L`` echoing the query's range id with Q-13 request status ``X`` ("request
  cannot be done / no information available", LIS2-A2 Q-13 request status codes).

Patient names go in P-6 as ``family^given^middle`` (Vietnamese order: the first word is the family
name, the last the given name, the words between the middle name). With ``profile.fold_to_ascii``
diacritics are removed (``Nông Thị Hoa`` -> ``Nong Thi Hoa``, ``đ`` -> ``d``) for analysers that cannot
take UTF-8; otherwise text the profile encoding cannot carry raises :class:`RecordError`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from drivers.astm.delimiters import DEFAULT_DELIMITERS, Delimiters
from drivers.astm.records import (
    HeaderRecord,
    OrderRecord,
    PatientRecord,
    QueryRecord,
    Record,
    TerminatorRecord,
    encode_message,
)
from drivers.profile import Profile

_EXTRA_FOLDS = str.maketrans({"đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"})


def fold_to_ascii(text: str) -> str:
    """Remove diacritics: ``Nông Thị Hoa`` -> ``Nong Thi Hoa``; ``đ``/``Đ`` -> ``d``/``D``.

    Characters that have no ASCII base letter are replaced by ``?`` so the result is always ASCII.
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA_FOLDS))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.encode("ascii", errors="replace").decode("ascii")


@dataclass(frozen=True, slots=True)
class OrderDescription:
    """What the LIS wants an analyser to run for one specimen."""

    specimen_id: str
    test_codes: tuple[str, ...]  # instrument test codes (already mapped from the LIS catalogue)
    patient_id: str = ""
    patient_name: str = ""  # as registered, e.g. "Nông Thị Hoa"
    sex: str = ""  # M, F or U
    birth_date: date | None = None
    priority: str = "R"  # LIS2-A2 O-6: R routine, S stat, A as soon as possible
    collected_at: datetime | None = None  # local time of the analyser
    specimen_type: str = ""  # O-16, e.g. "SERUM"


def _timestamp(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def _name_components(name: str) -> list[str]:
    words = name.split()
    if len(words) <= 1:
        return [name.strip()]
    return [words[0], words[-1], " ".join(words[1:-1])]


def _test_id(code: str, component: int) -> list[str]:
    return [""] * (component - 1) + [code]


def _header(profile: Profile, sender: str, now: datetime, d: Delimiters) -> Record:
    receiver = str(profile.extra.get("receiver_id", ""))
    return HeaderRecord.build(d, sender_id=sender, receiver_id=receiver, processing_id="P",
                              version="LIS2-A2", timestamp=_timestamp(now))


class _Text:
    def __init__(self, profile: Profile) -> None:
        self.fold = profile.fold_to_ascii

    def __call__(self, text: str) -> str:
        return fold_to_ascii(text) if self.fold else text


def build_order_records(orders: Sequence[OrderDescription], profile: Profile, *, now: datetime,
                        sender: str = "OPEN-LIS", in_reply_to_query: bool = True,
                        delimiters: Delimiters = DEFAULT_DELIMITERS) -> list[Record]:
    """H, then P and O for each specimen, then L. O-26 is ``Q`` (response to query) or ``O`` (order)."""
    t = _Text(profile)
    component = int(profile.extra.get("order_test_code_component", profile.test_code_component))
    records: list[Record] = [_header(profile, sender, now, delimiters)]
    for number, order in enumerate(orders, start=1):
        if not order.test_codes:
            raise ValueError(f"order for specimen {order.specimen_id!r} has no tests")
        records.append(PatientRecord.build(
            delimiters,
            sequence=str(number),
            practice_patient_id=t(order.patient_id),
            name=[t(c) for c in _name_components(order.patient_name)] if order.patient_name else "",
            birth_date=order.birth_date.strftime("%Y%m%d") if order.birth_date else "",
            sex=order.sex,
        ))
        records.append(OrderRecord.build(
            delimiters,
            sequence="1",
            specimen_id=t(order.specimen_id),
            universal_test_id=[_test_id(t(code), component) for code in order.test_codes],
            priority=order.priority,
            requested_at=_timestamp(now),
            collected_at=_timestamp(order.collected_at) if order.collected_at else "",
            action_code="N",
            specimen_descriptor=order.specimen_type,
            report_type="Q" if in_reply_to_query else "O",
        ))
    records.append(TerminatorRecord.build(delimiters, sequence="1", termination_code="N"))
    return records


def build_order_message(orders: Sequence[OrderDescription], profile: Profile, *, now: datetime,
                        sender: str = "OPEN-LIS", in_reply_to_query: bool = True) -> bytes:
    """The bytes (records separated by CR, in the profile encoding) of an order download."""
    records = build_order_records(orders, profile, now=now, sender=sender,
                                  in_reply_to_query=in_reply_to_query)
    return encode_message(records, encoding=profile.encoding)


def build_no_order_message(specimen_ids: Sequence[str], profile: Profile, *, now: datetime,
                           sender: str = "OPEN-LIS") -> bytes:
    """The "no information" answer for specimens the LIS has no order for (see module docstring)."""
    style = str(profile.extra.get("no_order_reply", "order"))
    if style not in ("order", "query"):
        raise ValueError(f"profile {profile.name}: extra.no_order_reply must be 'order' or 'query'")
    t = _Text(profile)
    d = DEFAULT_DELIMITERS
    records: list[Record] = [_header(profile, sender, now, d)]
    for number, specimen_id in enumerate(specimen_ids, start=1):
        if style == "query":
            records.append(QueryRecord.build(d, sequence=str(number), starting_range_id=["", t(specimen_id)],
                                             universal_test_id=["", "", "", "ALL"], request_status="X"))
        else:
            records.append(PatientRecord.build(d, sequence=str(number)))
            records.append(OrderRecord.build(d, sequence="1", specimen_id=t(specimen_id), report_type="Y"))
    records.append(TerminatorRecord.build(d, sequence="1", termination_code="N"))
    return encode_message(records, encoding=profile.encoding)
