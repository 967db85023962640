"""Comments on results by laboratory staff (shown on the worklist and the report), audited, version-checked."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session

from lis.models import Result, ResultStatus, utcnow
from lis.services import audit

MAX_COMMENT = 1000
_R = Result.__table__  # type: ignore[attr-defined]


class CommentError(ValueError):
    """The comment cannot be added; the message says why (empty, too long, result changed or finished)."""


def add_comment(session: Session, result_id: int, version: int, text: str, actor: str) -> Result:
    """Append ``text`` (signed with the actor) to the result's comment; refuses when the result changed since
    the caller read it (optimistic version) or is no longer editable (released, amended, rejected)."""
    text = text.strip()
    if not text:
        raise CommentError("the comment is empty")
    if len(text) > MAX_COMMENT:
        raise CommentError(f"the comment is longer than {MAX_COMMENT} characters")
    result = session.get(Result, result_id)
    if result is None or result.is_qc:
        raise CommentError(f"result {result_id} not found")
    if result.status in (ResultStatus.RELEASED, ResultStatus.AMENDED, ResultStatus.REJECTED):
        raise CommentError(f"result {result_id} is {result.status}: comments are added before release "
                           "(amend a released result with a reason instead)")
    if result.version != version:
        who = result.updated_by or "the system"
        when = result.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC") if result.updated_at else "an unknown time"
        raise CommentError(f"result {result_id} was changed by {who} at {when}: reload it; your comment is kept")
    now = utcnow()
    combined = f"{result.comment}\n[{actor}] {text}".strip() if result.comment else f"[{actor}] {text}"
    done = session.connection().execute(
        update(_R).where(_R.c.id == result_id, _R.c.version == version)
        .values(comment=combined, updated_by=actor, updated_at=now, version=_R.c.version + 1))
    if done.rowcount != 1:
        raise CommentError(f"result {result_id} was changed meanwhile: reload it; your comment is kept")
    session.expire(result)
    audit.record(session, actor, "result.comment", "result", result_id, after={"comment": text})
    refreshed = session.get(Result, result_id)
    assert refreshed is not None
    return refreshed
