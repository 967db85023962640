"""REST API /api/v1: auth, roles, orders, results, journal, audit (TestClient on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lis.cli.server import create_app
from lis.context import LisContext
from lis.services.users import add_user
from tests.lis.astm_fixtures import astm_message

ORDER = {
    "patient": {"national_id": "079085001234", "name": "Nông Thị Hoa", "sex": "F", "birth_date": "1985-03-02"},
    "specimen_id": "2611260001", "tests": ["CBC", "GLU"], "priority": "stat",
}


@pytest.fixture
def client(ctx: LisContext) -> Iterator[TestClient]:
    with ctx.db.write() as session:
        for name, role in (("tech", "technician"), ("doc", "clinician"), ("boss", "manager"), ("gw", "integration")):
            add_user(session, name, role, "secret-pw")
    with TestClient(create_app(ctx, with_web=False)) as test_client:
        yield test_client


def auth(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": "secret-pw"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_health_needs_no_auth(client: TestClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_openapi_served(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/orders" in paths and "/api/v1/results" in paths


def test_login_failures_and_lockout(client: TestClient) -> None:
    assert client.post("/api/v1/auth/token", json={"username": "tech", "password": "nope"}).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"}).status_code == 401
    for _ in range(5):
        client.post("/api/v1/auth/token", json={"username": "boss", "password": "wrong"})
    locked = client.post("/api/v1/auth/token", json={"username": "boss", "password": "secret-pw"})
    assert locked.status_code == 401 and "locked" in locked.json()["detail"]


def test_missing_and_bad_tokens(client: TestClient) -> None:
    assert client.get("/api/v1/results").status_code == 401
    assert client.get("/api/v1/results", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_catalogue_listing(client: TestClient) -> None:
    tests = client.get("/api/v1/tests", headers=auth(client, "doc")).json()
    glu = next(t for t in tests if t["code"] == "GLU")
    assert glu == {**glu, "name": "Glucose", "loinc": "15074-8", "unit": "mmol/L"}
    assert len(tests) >= 40


def test_create_order_and_read_it_back(client: TestClient) -> None:
    headers = auth(client, "tech")
    response = client.post("/api/v1/orders", json=ORDER, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["patient"]["name"] == "Nông Thị Hoa" and body["priority"] == "stat"
    assert {t["code"] for t in body["tests"]} >= {"WBC", "HGB", "PLT", "GLU"}
    assert client.get(f"/api/v1/orders/{body['id']}", headers=headers).json()["filler_number"] == body["filler_number"]
    found = client.get("/api/v1/patients", params={"q": "nong thi hoa"}, headers=headers).json()
    assert [p["national_id"] for p in found] == ["079085001234"]
    assert client.get("/api/v1/specimens/2611260001", headers=headers).status_code == 200


def test_order_errors_write_nothing(client: TestClient) -> None:
    headers = auth(client, "tech")
    bad = client.post("/api/v1/orders", json={**ORDER, "tests": ["NOPE"]}, headers=headers)
    assert bad.status_code == 422 and "NOPE" in bad.json()["detail"]
    assert client.post("/api/v1/orders", json={**ORDER, "priority": "asap"}, headers=headers).status_code == 422
    assert client.post("/api/v1/orders", json={"specimen_id": "x"}, headers=headers).status_code == 422
    assert client.get("/api/v1/patients", headers=headers).json() == []  # nothing partial
    assert client.post("/api/v1/orders", json=ORDER, headers=headers).status_code == 201
    dup = client.post("/api/v1/orders", json=ORDER, headers=headers)
    assert dup.status_code == 409 and "already used" in dup.json()["detail"]


def test_roles_are_enforced_by_the_server(client: TestClient) -> None:
    clinician = auth(client, "doc")
    assert client.post("/api/v1/orders", json=ORDER, headers=clinician).status_code == 403
    assert client.get("/api/v1/audit", headers=clinician).status_code == 403
    assert client.get("/api/v1/raw-messages", headers=clinician).status_code == 403
    assert client.get("/api/v1/audit", headers=auth(client, "tech")).status_code == 403
    assert client.get("/api/v1/audit/verify", headers=auth(client, "boss")).json()["ok"] is True


def test_ingest_endpoint_results_and_filters(client: TestClient) -> None:
    tech, gateway = auth(client, "tech"), auth(client, "gw")
    client.post("/api/v1/orders", json=ORDER, headers=tech)
    message = astm_message("2611260001", [("WBC", "7.1", "10*3/uL"), ("GLU", "5.6", "mmol/L"), ("XYZ", "1", "")])
    posted = client.post("/api/v1/ingest/xn-1", content=message, headers=gateway)
    assert posted.status_code == 202 and posted.json()["results"] == 3
    assert client.post("/api/v1/ingest/xn-1", content=message, headers=tech).status_code == 403
    assert client.post("/api/v1/ingest/nope", content=message, headers=gateway).status_code == 404
    rows = client.get("/api/v1/results", params={"specimen_id": "2611260001"}, headers=tech).json()
    assert [r["instrument_test_code"] for r in rows] == ["WBC", "GLU", "XYZ"]
    assert rows[0]["patient_name"] == "Nông Thị Hoa" and rows[0]["version"] == 1 and rows[0]["id"]
    unmatched = client.get("/api/v1/results", params={"status": "unmatched"}, headers=tech).json()
    assert [r["instrument_test_code"] for r in unmatched] == ["XYZ"]
    assert client.get("/api/v1/results", params={"instrument": "bs-1"}, headers=tech).json() == []
    raw = client.get(f"/api/v1/raw-messages/{rows[0]['raw_message_id']}", headers=tech).json()
    assert raw["status"] == "unmatched" and raw["data_text"].startswith("H|")
    again = client.post(f"/api/v1/raw-messages/{raw['id']}/reprocess", headers=tech).json()
    assert again["results"] == 3
    assert len(client.get("/api/v1/results", headers=tech).json()) == 3  # reprocess duplicated nothing


def test_instruments_listing(client: TestClient, ctx: LisContext) -> None:
    rows = client.get("/api/v1/instruments", headers=auth(client, "tech")).json()
    assert [(r["name"], r["protocol"], r["state"], r["backlog"]) for r in rows] == [("xn-1", "astm", "stopped", 0),
                                                                                    ("bs-1", "hl7", "stopped", 0)]
    # the database was unreachable: messages acknowledged into the journal spool wait to be stored
    ctx.status.backlog("xn-1", 12)
    ctx.status.error("xn-1", "messages not stored yet (kept in the spool, retrying): connection refused")
    row = client.get("/api/v1/instruments", headers=auth(client, "tech")).json()[0]
    assert row["backlog"] == 12 and "kept in the spool" in row["last_error"]


def test_filler_number_collision_draws_another(ctx: LisContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random filler numbers collide now and then (thousands of orders a day): the order still gets a unique one."""
    from lis.services import orders as orders_module
    from lis.services.orders import OrderRequest, create_order
    from lis.services.patients import PatientData

    draws = iter(["L261127AAAAAAAA", "L261127AAAAAAAA", "L261127BBBBBBBB"])
    monkeypatch.setattr(orders_module, "new_filler_number", lambda today=None: next(draws))
    with ctx.db.write() as session:
        first = create_order(session, ctx.catalog.get(), OrderRequest(
            patient=PatientData(name="Lê Văn Tám"), specimen_id="F1", tests=["GLU"]), "test")
        second = create_order(session, ctx.catalog.get(), OrderRequest(
            patient=PatientData(name="Lê Văn Tám"), specimen_id="F2", tests=["GLU"]), "test")
    assert (first.filler_number, second.filler_number) == ("L261127AAAAAAAA", "L261127BBBBBBBB")
