"""The REST contract of issue 6 (TestClient, SQLite and PostgreSQL): result actions, critical notification,
batch, queue, rule CRUD with field-named 422s, simulator, section policies, reflex and delta rules, specimen
reception, order cancellation, add-on tests, TAT report, and the role checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lis.cli.server import create_app
from lis.context import LisContext
from lis.models import QcRuleSet, User
from lis.services.security import issue_token
from lis.services.workflow.wiring import wire_workflow
from tests.lis.workflow.helpers import Obs, ingest

ROLES = {"tech": "technician", "doc": "validator", "doc2": "validator", "boss": "manager", "clin": "clinician"}


@pytest.fixture
def client(ctx: LisContext) -> Iterator[TestClient]:
    """Users with bearer tokens issued directly (the password login is tested in tests/lis/test_api.py; argon2
    hashing per test would dominate the run time)."""
    _TOKENS.clear()
    with ctx.db.write() as session:
        for name, role in ROLES.items():
            user = User(username=name, role=role, password_hash="-")
            session.add(user)
            session.flush()
            _TOKENS[name] = {"Authorization": f"Bearer {issue_token(session, user, 1)}"}
    wire_workflow(ctx)
    with TestClient(create_app(ctx, with_web=False)) as test_client:
        yield test_client
    ctx.workflow.unsubscribe()


_TOKENS: dict[str, dict[str, str]] = {}


def auth(client: TestClient, username: str) -> dict[str, str]:
    return _TOKENS[username]


def new_order(client: TestClient, barcode: str, tests: list[str]) -> dict[str, object]:
    body = {"patient": {"name": "Trần Văn Hùng", "sex": "M", "birth_date": "1970-05-01"}, "specimen_id": barcode,
            "tests": tests}
    response = client.post("/api/v1/orders", json=body, headers=auth(client, "tech"))
    assert response.status_code == 201, response.text
    return response.json()


def results_of(client: TestClient, barcode: str) -> dict[str, dict[str, object]]:
    rows = client.get("/api/v1/results", params={"specimen_id": barcode}, headers=auth(client, "tech")).json()
    return {r["test_code"]: r for r in rows}


def action(client: TestClient, user: str, result_id: object, name: str, version: object, **extra: object):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/results/{result_id}/actions", json={"action": name, "version": version, **extra},
                       headers=auth(client, user))


def test_contract_validate_then_release(client: TestClient, ctx: LisContext) -> None:
    new_order(client, "API1", ["GLU"])
    ingest(ctx, "API1", [Obs("GLU", "5.0", "mmol/L")])
    glu = results_of(client, "API1")["GLU"]
    assert glu["status"] == "pending"
    assert action(client, "clin", glu["id"], "validate", glu["version"]).status_code == 403
    early = action(client, "doc", glu["id"], "release", glu["version"])
    assert early.status_code == 409 and "technical validation first" in early.json()["detail"]
    validated = action(client, "tech", glu["id"], "validate", glu["version"])
    assert validated.status_code == 200, validated.text
    body = validated.json()
    assert (body["id"], body["status"], body["version"]) == (glu["id"], "technically_validated", glu["version"] + 1)
    assert action(client, "tech", glu["id"], "release", body["version"]).status_code == 403
    stale = action(client, "doc", glu["id"], "release", glu["version"])
    assert stale.status_code == 409 and "changed by tech at" in stale.json()["detail"]
    released = action(client, "doc", glu["id"], "release", body["version"])
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert released.json()["released_by"] == "doc" and released.json()["version"] == body["version"] + 1
    wrong = action(client, "doc", glu["id"], "validate", released.json()["version"])
    assert wrong.status_code == 409 and "released" in wrong.json()["detail"]
    missing = action(client, "doc", 999999, "validate", 1)
    assert missing.status_code == 404
    bad = client.post(f"/api/v1/results/{glu['id']}/actions", json={"action": "approve", "version": 1},
                      headers=auth(client, "doc"))
    assert bad.status_code == 422


def test_contract_held_and_critical_are_refused_with_reasons(client: TestClient, ctx: LisContext) -> None:
    new_order(client, "API2", ["NA", "K"])
    with ctx.db.write() as session:
        session.add(QcRuleSet(instrument="xn-1", test_code="NA", rejection_rules="1_3s"))
    ingest(ctx, "API2", [Obs("NA", "140", "mmol/L"), Obs("K", "6.9", "mmol/L")])
    rows = results_of(client, "API2")
    na, k = rows["NA"], rows["K"]
    na = action(client, "tech", na["id"], "validate", na["version"]).json()
    held = action(client, "doc", na["id"], "release", na["version"])
    assert held.status_code == 409 and "held by QC" in held.json()["detail"]
    k = action(client, "tech", k["id"], "validate", k["version"]).json()
    pending = client.get("/api/v1/critical-notifications/pending", headers=auth(client, "tech")).json()
    assert [p["result_id"] for p in pending] == [k["id"]]
    refused = action(client, "doc", k["id"], "release", k["version"])
    assert refused.status_code == 409 and "critical value" in refused.json()["detail"]
    note = client.post(f"/api/v1/results/{k['id']}/critical-notification",
                       json={"notified": "BS. Lan, khoa Nội", "method": "phone", "read_back": True},
                       headers=auth(client, "tech"))
    assert note.status_code == 200 and note.json()["read_back"] is True and note.json()["recorded_by"] == "tech"
    assert client.post(f"/api/v1/results/{k['id']}/critical-notification",
                       json={"notified": "x", "method": "phone", "read_back": True},
                       headers=auth(client, "clin")).status_code == 403
    assert client.get("/api/v1/critical-notifications/pending", headers=auth(client, "tech")).json() == []
    released = action(client, "doc", k["id"], "release", k["version"])
    assert released.status_code == 200 and released.json()["status"] == "released"


def test_contract_reject_rerun_amend(client: TestClient, ctx: LisContext) -> None:
    new_order(client, "API3", ["GLU", "UREA"])
    ingest(ctx, "API3", [Obs("GLU", "5.0", "mmol/L"), Obs("UREA", "5.0", "mmol/L")])
    rows = results_of(client, "API3")
    glu, urea = rows["GLU"], rows["UREA"]
    no_reason = action(client, "tech", urea["id"], "reject", urea["version"])
    assert no_reason.status_code == 422 and no_reason.json()["detail"].startswith("reason:")
    rerun = action(client, "tech", urea["id"], "rerun", urea["version"], reason="clot suspected")
    assert rerun.status_code == 200 and rerun.json()["status"] == "rerun_requested"
    rejected = action(client, "tech", urea["id"], "reject", rerun.json()["version"], reason="clotted specimen")
    assert rejected.json()["status"] == "rejected" and rejected.json()["status_reason"] == "clotted specimen"
    v = action(client, "tech", glu["id"], "validate", glu["version"]).json()["version"]
    v = action(client, "doc", glu["id"], "release", v).json()["version"]
    amended = action(client, "doc", glu["id"], "amend", v, reason="wrong specimen label", value="7.2")
    assert amended.status_code == 200, amended.text
    new = amended.json()
    assert new["id"] != glu["id"] and new["revision"] == 1 and new["supersedes_id"] == glu["id"]
    assert (new["status"], new["value"], new["result_status"], new["lis_flags"]) == ("released", "7.2", "C", "H")
    old = client.get(f"/api/v1/results/{glu['id']}", headers=auth(client, "tech")).json()
    assert old["status"] == "amended" and old["value"] == "5.0"


def test_batch_endpoint_and_queue(client: TestClient, ctx: LisContext) -> None:
    new_order(client, "API4", ["GLU", "UREA", "K"])
    ingest(ctx, "API4", [Obs("GLU", "5.0", "mmol/L"), Obs("UREA", "5.0", "mmol/L"), Obs("K", "1.9", "mmol/L")])
    queue = client.get("/api/v1/workflow/queue", headers=auth(client, "tech")).json()
    assert queue[0]["test_code"] == "K" and queue[0]["critical"] is True  # criticals first
    assert "autoverification is not enabled" in queue[1]["reasons"]
    done = client.post("/api/v1/results/batch-actions", json={"action": "validate", "specimen_id": "API4"},
                       headers=auth(client, "tech")).json()
    assert len(done["done"]) == 2 and "critical" in done["skipped"][0]["reason"]
    released = client.post("/api/v1/results/batch-actions",
                           json={"action": "release", "status": ["technically_validated"]},
                           headers=auth(client, "doc")).json()
    assert sorted(r["status"] for r in released["done"]) == ["released", "released"]
    assert client.post("/api/v1/results/batch-actions", json={"action": "release", "specimen_id": "API4"},
                       headers=auth(client, "tech")).status_code == 403
    assert client.post("/api/v1/results/batch-actions", json={"action": "release"},
                       headers=auth(client, "doc")).status_code == 422
    evaluation = client.get(f"/api/v1/results/{queue[0]['id']}/evaluation", headers=auth(client, "tech")).json()
    assert evaluation["decision"] == "pending" and any(r["rule"] == "not_critical" and not r["passed"]
                                                       for r in evaluation["rules"])


def test_rule_crud_refuses_invalid_definitions_naming_the_field(client: TestClient) -> None:
    boss, tech = auth(client, "boss"), auth(client, "tech")
    url = "/api/v1/workflow/autoverification-rules"
    assert client.put(f"{url}/GLU", json={"av_low": 3, "av_high": 10}, headers=tech).status_code == 403
    cases = [
        ("GLU", {"av_low": 10, "av_high": 3}, "av_high:"),
        ("GLU", {"rules": ["delta", "magic"]}, "rules:"),
        ("NOPE", {}, "test_code:"),
        ("GLU", {"enabled": True, "rules": []}, "rules:"),
        ("GLU", {"rules": ["qc_accepted", "delta"]}, "rules: not_critical cannot be switched off"),
    ]
    for code, body, field in cases:
        response = client.put(f"{url}/{code}", json=body, headers=boss)
        assert response.status_code == 422 and response.json()["detail"].startswith(field), response.text
    typed = client.put(f"{url}/GLU", json={"av_low": "low"}, headers=boss)
    assert typed.status_code == 422 and "av_low" in str(typed.json()["detail"])
    ok = client.put(f"{url}/GLU", json={"av_low": 3, "av_high": 10, "rules": ["delta", "not_critical", "qc_accepted"]},
                    headers=boss)
    assert ok.status_code == 200 and ok.json()["rules"] == ["qc_accepted", "not_critical", "delta"]
    listed = client.get(url, headers=tech).json()
    assert [r["test_code"] for r in listed["rule_sets"]] == ["GLU"] and "no_comment" in listed["known_rules"]
    assert client.delete(f"{url}/GLU", headers=boss).status_code == 204
    assert client.delete(f"{url}/GLU", headers=boss).status_code == 404
    policy = client.put("/api/v1/workflow/section-policies/chemistry", json={"two_level": False}, headers=boss)
    assert policy.status_code == 200 and policy.json()["two_level"] is False
    unknown = client.put("/api/v1/workflow/section-policies/astrology", json={}, headers=boss)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("section:")
    delta = client.put("/api/v1/workflow/delta-rules/K", json={"window_hours": 0, "abs_limit": 1}, headers=boss)
    assert delta.status_code == 422 and delta.json()["detail"].startswith("window_hours:")
    assert client.put("/api/v1/workflow/delta-rules/K", json={}, headers=boss).json()["detail"].startswith("abs_limit")
    assert client.put("/api/v1/workflow/delta-rules/K", json={"pct_limit": 30}, headers=boss).status_code == 200
    reflex = client.post("/api/v1/workflow/reflex-rules", json={"test_code": "TSH", "condition": "above",
                                                                "add_test": "FT4"}, headers=boss)
    assert reflex.status_code == 422 and reflex.json()["detail"].startswith("threshold:")
    created = client.post("/api/v1/workflow/reflex-rules", json={"test_code": "TSH", "condition": "outside_range",
                                                                 "add_test": "FT4"}, headers=boss)
    assert created.status_code == 201
    assert client.delete(f"/api/v1/workflow/reflex-rules/{created.json()['id']}", headers=boss).status_code == 204


def test_simulator_endpoint(client: TestClient, ctx: LisContext) -> None:
    new_order(client, "API5", ["GLU"])
    ingest(ctx, "API5", [Obs("GLU", "5.0", "mmol/L")])
    glu = results_of(client, "API5")["GLU"]
    v = action(client, "tech", glu["id"], "validate", glu["version"]).json()["version"]
    action(client, "doc", glu["id"], "release", v)
    report = client.post("/api/v1/workflow/autoverification-rules/simulate",
                         json={"rule_sets": {"GLU": {"av_low": 3, "av_high": 10}}}, headers=auth(client, "boss"))
    assert report.status_code == 200, report.text
    assert report.json()["total"] == 1 and report.json()["would_autoverify"] == 1 and report.json()["agree"] == 1
    bad = client.post("/api/v1/workflow/autoverification-rules/simulate",
                      json={"rule_sets": {"GLU": {"av_low": 9, "av_high": 1}}}, headers=auth(client, "boss"))
    assert bad.status_code == 422 and bad.json()["detail"].startswith("av_high:")


def test_specimen_reception_cancel_and_add_on(client: TestClient, ctx: LisContext) -> None:
    tech = auth(client, "tech")
    created = new_order(client, "API6", ["GLU"])
    received = client.post("/api/v1/specimens/API6/receive", headers=tech)
    assert received.status_code == 200 and received.json()["status"] == "received"
    assert client.post("/api/v1/specimens/NOPE/receive", headers=tech).status_code == 404
    assert client.post("/api/v1/specimens/API6/receive", headers=auth(client, "clin")).status_code == 403
    added = client.post(f"/api/v1/orders/{created['id']}/tests", json={"tests": ["LIPID", "GLU"]}, headers=tech)
    assert added.status_code == 200 and sorted(added.json()["added"]) == ["CHOL", "HDL", "LDL", "TG"]
    ingest(ctx, "API6", [Obs("GLU", "5.0", "mmol/L")])
    no_reason = client.post(f"/api/v1/orders/{created['id']}/cancel", json={"reason": " "}, headers=tech)
    assert no_reason.status_code == 422 and no_reason.json()["detail"].startswith("reason:")
    cancelled = client.post(f"/api/v1/orders/{created['id']}/cancel", json={"reason": "duplicate order"},
                            headers=tech)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert {t["status"] for t in cancelled.json()["tests"]} == {"cancelled"}
    assert results_of(client, "API6")["GLU"]["status"] == "rejected"
    again = client.post("/api/v1/specimens/API6/receive", headers=tech)
    assert again.status_code == 409 and "cancelled order" in again.json()["detail"]
    assert client.post(f"/api/v1/orders/{created['id']}/tests", json={"tests": ["K"]},
                       headers=tech).status_code == 409


def test_tat_report_endpoint(client: TestClient, ctx: LisContext) -> None:
    new_order(client, "API7", ["GLU"])
    client.post("/api/v1/specimens/API7/receive", headers=auth(client, "tech"))
    ingest(ctx, "API7", [Obs("GLU", "5.0", "mmol/L")])
    glu = results_of(client, "API7")["GLU"]
    v = action(client, "tech", glu["id"], "validate", glu["version"]).json()["version"]
    action(client, "doc", glu["id"], "release", v)
    report = client.get("/api/v1/reports/tat", headers=auth(client, "boss")).json()
    assert [(r["section"], r["test_code"], r["count"]) for r in report["overall"]] == [("chemistry", "GLU", 1)]
    assert report["by_day"][0]["median_minutes"] >= 0
    assert client.get("/api/v1/reports/tat", headers=auth(client, "clin")).status_code == 403
