"""/api/v1/qc routes: roles (403), validation (422), not found (404), conflicts (409), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from lis.cli.server import create_app
from lis.context import LisContext
from lis.models import utcnow
from lis.services.users import add_user
from qc.service import QcService
from qc.wiring import install
from tests.qc.service_helpers import T0, GlucoseQc

ROLES = {"tech": "technician", "val": "validator", "boss": "manager", "doc": "clinician", "gw": "integration"}


@pytest.fixture
def app_client(ctx: LisContext) -> Iterator[tuple[TestClient, QcService]]:
    app = create_app(ctx, with_web=False)
    service = install(ctx, app)
    with TestClient(app) as test_client:
        yield test_client, service


@pytest.fixture
def client(app_client: tuple[TestClient, QcService]) -> TestClient:
    return app_client[0]




def auth(client: TestClient, username: str) -> dict[str, str]:
    """Bearer header for a user (one login per client and user)."""
    tokens: dict[str, dict[str, str]] = client.app.state.__dict__.setdefault("test_tokens", {})  # type: ignore[attr-defined]
    if username not in tokens:  # users are created on first use (argon2 hashing is slow on purpose)
        ctx: LisContext = client.app.state.lis  # type: ignore[attr-defined]
        with ctx.db.write() as session:
            add_user(session, username, ROLES[username], "secret-pw")
        response = client.post("/api/v1/auth/token", json={"username": username, "password": "secret-pw"})
        assert response.status_code == 200, response.text
        tokens[username] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return tokens[username]


def configure(client: TestClient) -> dict[str, int]:
    """Two materials, lot L1 each, manufacturer targets for GLU on xn-1, through the API."""
    boss = auth(client, "boss")
    ids: dict[str, int] = {}
    for code, mean, sd in (("QC-1", 5.0, "0.2"), ("QC-2", "15.0", 0.5)):
        m = client.post("/api/v1/qc/materials", json={"code": code, "name": f"Control {code}", "level": code[-1]},
                        headers=boss)
        assert m.status_code == 201, m.text
        lot = client.post("/api/v1/qc/lots", json={"material_id": m.json()["id"], "lot_number": "L1",
                                                   "expires_on": "2027-12-31"}, headers=boss)
        assert lot.status_code == 201, lot.text
        t = client.post("/api/v1/qc/targets", json={"lot_id": lot.json()["id"], "instrument": "xn-1",
                                                    "test_code": "GLU", "mean": mean, "sd": sd, "tea_pct": 6.9,
                                                    "bias_pct": 1.2}, headers=boss)
        assert t.status_code == 201, t.text
        assert (t.json()["mean"], t.json()["state"]) == (str(mean), "active")
        ids[code], ids[f"lot:{code}"] = m.json()["id"], lot.json()["id"]
    return ids


def test_roles(client: TestClient) -> None:
    body = {"code": "QC-1", "name": "Control 1"}
    assert client.get("/api/v1/qc/status").status_code == 401
    assert client.get("/api/v1/qc/status", headers=auth(client, "doc")).status_code == 200
    assert client.get("/api/v1/qc/status", headers=auth(client, "gw")).status_code == 403
    for user in ("tech", "val", "doc"):
        assert client.post("/api/v1/qc/materials", json=body, headers=auth(client, user)).status_code == 403
    assert client.post("/api/v1/qc/materials", json=body, headers=auth(client, "boss")).status_code == 201
    assert client.post("/api/v1/qc/materials", json=body, headers=auth(client, "boss")).status_code == 409
    manual = {"instrument": "xn-1", "test_code": "GLU", "material_id": 1, "value": "5.0"}
    assert client.post("/api/v1/qc/observations", json=manual, headers=auth(client, "doc")).status_code == 403
    assert client.post("/api/v1/qc/holds/1/corrective-action", json={"action": "recalibrated"},
                       headers=auth(client, "tech")).status_code == 403
    assert client.post("/api/v1/qc/holds/1/corrective-action", json={"action": "recalibrated"},
                       headers=auth(client, "val")).status_code == 404


def test_validation_errors(client: TestClient) -> None:
    ids = configure(client)
    boss = auth(client, "boss")
    lot = ids["lot:QC-1"]
    bad_targets = [
        {"lot_id": lot, "instrument": "xn-1", "test_code": "K", "mean": 4, "sd": 0},  # SD <= 0
        {"lot_id": lot, "instrument": "xn-1", "test_code": "K", "mean": 4},  # mean without SD
        {"lot_id": lot, "instrument": "xn-1", "test_code": "NOPE", "mean": 4, "sd": 1},  # not in catalogue
        {"lot_id": lot, "instrument": "xn-1", "test_code": "K", "mean": "abc", "sd": 1},  # not a number
    ]
    for body in bad_targets:
        response = client.post("/api/v1/qc/targets", json=body, headers=boss)
        assert response.status_code == 422, (body, response.text)
    assert client.post("/api/v1/qc/targets", json={**bad_targets[0], "lot_id": 999, "sd": 1},
                       headers=boss).status_code == 404
    rule_set = {"instrument": "xn-1", "test_code": "GLU", "rejection_rules": ["1_3s", "2_2S"]}
    response = client.put("/api/v1/qc/rule-sets", json=rule_set, headers=boss)
    assert response.status_code == 422 and "2_2S" in response.json()["detail"]
    tech = auth(client, "tech")
    manual = {"instrument": "xn-1", "test_code": "GLU", "material_id": ids["QC-1"], "value": "5.0"}
    assert client.post("/api/v1/qc/observations", json={**manual, "instrument": "zz-9"},
                       headers=tech).status_code == 422
    assert client.post("/api/v1/qc/observations", json={**manual, "material_id": 999},
                       headers=tech).status_code == 404
    assert client.post("/api/v1/qc/observations", json={**manual, "value": ""}, headers=tech).status_code == 422


def test_rule_set_and_sigma_proposal(client: TestClient) -> None:
    configure(client)
    doc = auth(client, "doc")
    proposal = client.get("/api/v1/qc/rule-sets/proposal", params={"instrument": "xn-1", "test_code": "GLU"},
                          headers=doc).json()
    # CV = max(0.2/5, 0.5/15) = 4 %; sigma = (6.9 - 1.2) / 4 = 1.425 -> < 4: full multirule
    assert proposal["label"] == "proposal" and proposal["confirmed"] is False
    assert proposal["sigma"] == pytest.approx(1.425) and proposal["rejection_rules"][-1] == "10_x"
    assert proposal["cv_source"] == "target SD"
    high = client.get("/api/v1/qc/rule-sets/proposal", params={"instrument": "xn-1", "test_code": "GLU",
                                                                "cv_pct": 0.5}, headers=doc).json()
    assert high["rejection_rules"] == ["1_3s"]
    boss = auth(client, "boss")
    confirmed = client.put("/api/v1/qc/rule-sets", headers=boss, json={
        "instrument": "xn-1", "test_code": "GLU", "rejection_rules": high["rejection_rules"],
        "warning_rules": ["1_2s"], "source": "sigma proposal"})
    assert confirmed.status_code == 200, confirmed.text
    listed = client.get("/api/v1/qc/rule-sets", headers=doc).json()
    assert [(r["rejection_rules"], r["warning_rules"], r["source"]) for r in listed] == [
        ("1_3s", "1_2s", "sigma proposal")]


def test_manual_runs_holds_corrective_action_lj_and_status(client: TestClient) -> None:
    ids = configure(client)
    tech, val, doc = auth(client, "tech"), auth(client, "val"), auth(client, "doc")
    base = utcnow() - timedelta(hours=3)  # the status is computed for now: keep the runs recent

    def manual(level: str, value: str, minutes: int, key: str) -> dict[str, object]:
        body = {"instrument": "xn-1", "test_code": "GLU", "material_id": ids[level], "value": value,
                "observed_at": (base + timedelta(minutes=minutes)).isoformat(), "run_key": key}
        response = client.post("/api/v1/qc/observations", json=body, headers=tech)
        assert response.status_code == 201, response.text
        return response.json()

    manual("QC-1", "5.1", 0, "R1")
    assert client.post("/api/v1/qc/observations", headers=tech, json={
        "instrument": "xn-1", "test_code": "GLU", "material_id": ids["QC-1"], "value": "5.1",
        "run_key": "R1"}).status_code == 409  # the same level twice in one run
    assert manual("QC-2", "15.2", 1, "R1")["run"]["decision"] == "accept"  # type: ignore[index]
    assert client.post("/api/v1/qc/observations", headers=tech, json={
        "instrument": "xn-1", "test_code": "GLU", "material_id": ids["QC-1"], "value": "5",
        "run_key": "R1"}).status_code == 409  # R1 is evaluated
    manual("QC-1", "5.8", 60, "R2")  # +4 SD
    rejected = manual("QC-2", "15.0", 61, "R2")["run"]
    assert rejected["decision"] == "reject"  # type: ignore[index]
    status = client.get("/api/v1/qc/status", headers=doc).json()
    assert [(s["test_code"], s["status"], s["hold_reason"]) for s in status] == [("GLU", "rejected", "rejected_run")]
    runs = client.get("/api/v1/qc/runs", params={"test_code": "GLU"}, headers=doc).json()
    assert [r["decision"] for r in runs] == ["reject", "accept"]
    assert {v["rule"] for v in runs[0]["violations"]} == {"1_2s", "1_3s"} and len(runs[0]["observations"]) == 2
    (hold,) = client.get("/api/v1/qc/holds", headers=doc).json()
    assert hold["reason"] == "rejected_run" and hold["since"] is not None
    assert client.post(f"/api/v1/qc/holds/{hold['id']}/corrective-action", json={"action": "x"},
                       headers=val).status_code == 422
    response = client.post(f"/api/v1/qc/holds/{hold['id']}/corrective-action",
                           json={"action": "Replaced lamp, recalibrated"}, headers=val)
    assert response.status_code == 201 and response.json()["recorded_by"] == "val"
    manual("QC-1", "5.0", 120, "R3")
    assert manual("QC-2", "15.1", 121, "R3")["run"]["decision"] == "accept"  # type: ignore[index]
    assert client.get("/api/v1/qc/holds", headers=doc).json() == []
    lifted = client.get("/api/v1/qc/holds", params={"open_only": False}, headers=doc).json()
    assert lifted[0]["state"] == "lifted" and lifted[0]["lifted_by"] == "val"
    assert client.post(f"/api/v1/qc/holds/{hold['id']}/corrective-action", json={"action": "again"},
                       headers=val).status_code == 409
    lj = client.get("/api/v1/qc/levey-jennings", headers=doc, params={
        "instrument": "xn-1", "test_code": "GLU", "lot_id": ids["lot:QC-1"]}).json()
    assert [p["z"] for p in lj["points"]] == pytest.approx([0.5, 4.0, 0.0])
    assert lj["points"][1]["rules"] == ["1_2s", "1_3s"] and lj["statistics"]["n"] == 3
    assert client.get("/api/v1/qc/levey-jennings", headers=doc, params={
        "instrument": "xn-1", "test_code": "GLU", "lot_id": 999}).status_code == 404
    assert client.get("/api/v1/qc/status", headers=doc).json()[0]["status"] == "accepted"
    audit = client.get("/api/v1/audit", params={"limit": 500}, headers=auth(client, "boss")).json()
    assert {"qc.hold.opened", "qc.corrective_action", "qc.hold.lifted", "qc.observation.manual",
            "qc.material.create", "qc.target.create"} <= {e["action"] for e in audit}


def test_analyser_qc_through_ingest_shows_in_api(app_client: tuple[TestClient, QcService], ctx: LisContext) -> None:
    client, service = app_client
    configure(client)
    glu = GlucoseQc(ctx, service, {}, {}, {})
    glu.run(T0, 0.4, -0.3)
    runs = client.get("/api/v1/qc/runs", headers=auth(client, "tech")).json()
    assert [(r["decision"], len(r["observations"])) for r in runs] == [("accept", 2)]


def test_install_is_idempotent_and_schedules_the_periodic_check(ctx: LisContext) -> None:
    from lis.runtime import Runtime
    from qc.periodic import QcPeriodicCheck
    from qc.wiring import service_for

    app = create_app(ctx, with_web=False)
    runtime = Runtime()
    first = install(ctx, app, runtime)
    routes = len(app.routes)
    assert install(ctx, app, runtime) is first and service_for(ctx) is first
    assert [type(c) for c in runtime.components] == [QcPeriodicCheck]
    assert len(app.routes) == routes and "/api/v1/qc/status" in app.openapi()["paths"]
