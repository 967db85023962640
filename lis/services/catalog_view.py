"""Read-only views of the catalogue for the administration page (tests, ranges, panels, code maps)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from lis.models import Panel, PanelMember, ReferenceRange, TestCodeMap, TestDefinition


def tests(session: Session) -> list[TestDefinition]:
    return list(session.exec(select(TestDefinition).order_by(TestDefinition.section, TestDefinition.code)).all())


def ranges(session: Session) -> dict[str, list[ReferenceRange]]:
    out: dict[str, list[ReferenceRange]] = {}
    for row in session.exec(select(ReferenceRange).order_by(ReferenceRange.test_code, col(ReferenceRange.id))).all():
        out.setdefault(row.test_code, []).append(row)
    return out


def panels(session: Session) -> list[tuple[Panel, list[str]]]:
    members: dict[str, list[str]] = {}
    for m in session.exec(select(PanelMember).order_by(PanelMember.panel_code, PanelMember.position)).all():
        members.setdefault(m.panel_code, []).append(m.test_code)
    return [(p, members.get(p.code, [])) for p in session.exec(select(Panel).order_by(Panel.code)).all()]


def code_maps(session: Session) -> list[TestCodeMap]:
    return list(session.exec(select(TestCodeMap).order_by(TestCodeMap.instrument, TestCodeMap.instrument_code)).all())
