"""End to end through the real workflow and API: release → in-transaction outbox rows → ORU to the EMR → status
and retry over REST; amendment → correction; FHIR ServiceRequest in; XML4 export and ``lis`` CLI (issue 7)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from interfaces.signing import create_demo_pki
from lis.cli.server import create_app
from lis.config import EmrConfig
from lis.context import LisContext
from lis.runtime import Runtime
from lis.services.users import add_user
from lis.services.workflow.wiring import wire_workflow
from tests.interfaces.helpers import FakeEmr, fast_settings, outbox_rows
from tests.lis.workflow.helpers import Obs, ingest, order, row

TECH = {"actor": "tech", "role": "technician"}
DOC = {"actor": "doc", "role": "validator"}


class EmrThread:
    """The fake EMR on its own event loop (the app runs in TestClient's)."""

    def __init__(self, mode: str = "AA") -> None:
        self.emr = FakeEmr(mode)
        self.loop = asyncio.new_event_loop()
        import threading

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.emr.start(), self.loop).result(5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.emr.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def wired(ctx: LisContext) -> Iterator[tuple[LisContext, TestClient, EmrThread]]:
    emr = EmrThread("AE")
    config = ctx.config.model_copy(update={"emr": [EmrConfig(name="his", kind="hl7-mllp", port=emr.port,
                                                             timeout_seconds=2, max_attempts=3)]})
    ctx.config = config
    create_demo_pki(config.data_dir, {"doc": "BS. Trần Văn Hùng"})
    with ctx.db.write() as session:
        add_user(session, "tech", "technician", "secret-pw")
        add_user(session, "doc", "validator", "secret-pw", full_name="BS. Trần Văn Hùng")
        add_user(session, "clin", "clinician", "secret-pw")
        add_user(session, "emr", "integration", "secret-pw")
    wire_workflow(ctx)
    runtime = Runtime()
    app = create_app(ctx, runtime, with_web=False, outbox_settings=fast_settings())
    try:
        with TestClient(app) as client:
            yield ctx, client, emr
    finally:
        ctx.workflow.unsubscribe()
        emr.close()


def _token(client: TestClient, user: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", json={"username": user, "password": "secret-pw"}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _until(predicate, timeout: float = 15) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_release_to_emr_status_retry_and_correction(wired: tuple[LisContext, TestClient, EmrThread]) -> None:
    ctx, client, emr = wired
    order(ctx, "E2E1", ["GLU"], national_id="079085001234")
    [rid] = ingest(ctx, "E2E1", [Obs("GLU", "7.8", "mmol/L", flags="H")])
    ctx.workflow.act(rid, "validate", row(ctx, rid).version, **TECH)
    ctx.workflow.act(rid, "release", row(ctx, rid).version, **DOC)
    rows = outbox_rows(ctx.db)
    assert {r.destination for r in rows} == {"report-signing", "his"}  # written in the release transaction
    assert _until(lambda: outbox_rows(ctx.db, "his")[0].status == "dead")
    his = outbox_rows(ctx.db, "his")[0]
    assert "Unknown patient visit code" in his.last_error and emr.emr.received == [his.message_id]
    assert _until(lambda: outbox_rows(ctx.db, "report-signing")[0].status == "delivered")

    clin, tech = _token(client, "clin"), _token(client, "tech")
    deliveries = client.get(f"/api/v1/results/{rid}/deliveries", headers=clin).json()
    assert {d["destination"]: d["status"] for d in deliveries} == {"his": "dead", "report-signing": "delivered"}
    assert client.get("/api/v1/outbox/summary", headers=clin).json()["his"] == {"dead": 1}
    assert client.post(f"/api/v1/outbox/{his.id}/retry", headers=clin).status_code == 403
    emr.emr.mode = "AA"
    retried = client.post(f"/api/v1/outbox/{his.id}/retry", headers=tech)
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert client.post(f"/api/v1/outbox/{his.id}/retry", headers=tech).status_code in (200, 409)
    assert _until(lambda: outbox_rows(ctx.db, "his")[0].status == "delivered")
    assert emr.emr.received == [his.message_id, his.message_id]  # same MSH-10 on the manual retry

    ctx.workflow.act(rid, "amend", row(ctx, rid).version, **DOC, reason="typo", value="6.1")
    assert _until(lambda: len(outbox_rows(ctx.db, "his")) == 2 and outbox_rows(ctx.db, "his")[1].status
                  == "delivered")
    correction = emr.emr.messages[outbox_rows(ctx.db, "his")[1].message_id]
    obx = next(s.split("|") for s in correction.split("\r") if s.startswith("OBX"))
    assert obx[5] == "6.1" and obx[11] == "C"
    order_id = outbox_rows(ctx.db, "his")[0].order_id
    reports = client.get(f"/api/v1/reports?order_id={order_id}", headers=clin).json()
    assert _until(lambda: len(client.get(f"/api/v1/reports?order_id={order_id}", headers=clin).json()) == 2)
    reports = client.get(f"/api/v1/reports?order_id={order_id}", headers=clin).json()
    assert [(r["version"], r["correction"], r["signer"]) for r in reports] == [(1, False, "doc"), (2, True, "doc")]
    pdf = client.get(reports[1]["pdf"], headers=clin)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


SERVICE_REQUEST = {
    "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "stat",
    "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]},
                    "system": "urn:his:order", "value": "HIS-SR-1"}],
    "contained": [
        {"resourceType": "Patient", "id": "p", "name": [{"text": "Lê Văn Bình"}], "gender": "male",
         "birthDate": "1990-01-15", "identifier": [{"system": "https://fhir.vn/sid/cccd", "value": "001090000111"}]},
        {"resourceType": "Specimen", "id": "s", "accessionIdentifier": {"value": "FSR0001"}},
    ],
    "subject": {"reference": "#p"}, "specimen": [{"reference": "#s"}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8"}]},
    "orderDetail": [{"coding": [{"system": "urn:his:test", "code": "CREA"}]}],
    "requester": {"display": "BS. Lê An"},
}


def test_fhir_service_request_creates_an_order(wired: tuple[LisContext, TestClient, EmrThread]) -> None:
    _ctx, client, _ = wired
    emr = _token(client, "emr")
    created = client.post("/api/v1/fhir/ServiceRequest", json=SERVICE_REQUEST, headers=emr)
    assert created.status_code == 201, created.text
    filler = created.json()["id"]
    assert created.json()["identifier"][-1]["value"] == filler
    again = client.post("/api/v1/fhir/ServiceRequest", json=SERVICE_REQUEST, headers=emr)
    assert again.status_code == 200 and again.json()["id"] == filler
    spec = client.get("/api/v1/specimens/FSR0001", headers=emr).json()
    assert spec["order"]["priority"] == "stat" and sorted(t["code"] for t in spec["order"]["tests"]) == ["CREA", "GLU"]
    assert spec["order"]["patient"]["national_id"] == "001090000111"

    unknown = {**SERVICE_REQUEST, "identifier": [{"system": "urn:his:order", "value": "HIS-SR-2"}],
               "orderDetail": [{"coding": [{"system": "urn:his:test", "code": "NOPE9"}]}]}
    refused = client.post("/api/v1/fhir/ServiceRequest", json=unknown, headers=emr)
    assert refused.status_code == 422 and "NOPE9" in refused.json()["issue"][0]["diagnostics"]
    kept = client.get("/api/v1/emr/inbound?status=needs_attention", headers=emr).json()
    assert len(kept) == 1 and "NOPE9" in kept[0]["error"]
    invalid = client.post("/api/v1/fhir/ServiceRequest", json={**SERVICE_REQUEST, "intent": 5}, headers=emr)
    assert invalid.status_code == 400 and invalid.json()["resourceType"] == "OperationOutcome"


def test_xml4_export_and_report_verify_cli(wired: tuple[LisContext, TestClient, EmrThread], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import lis.migrate
    from interfaces.cli import export, report

    monkeypatch.setattr(lis.migrate, "require_current", lambda *a, **k: None)  # schema built from the models
    from lis.models import Encounter, Order, SignedReport

    ctx, _client, emr = wired
    emr.emr.mode = "AA"
    order_id = order(ctx, "X4A", ["GLU", "CREA"], national_id="079085001234")
    with ctx.db.write() as session:
        enc = Encounter(patient_id=session.get(Order, order_id).patient_id, visit_code="MALK-X4")
        session.add(enc)
        session.flush()
        o = session.get(Order, order_id)
        o.encounter_id = enc.id
        session.add(o)
    rids = ingest(ctx, "X4A", [Obs("GLU", "7.8", "mmol/L", flags="H"), Obs("CREA", "88", "umol/L")])
    for rid in rids:
        ctx.workflow.act(rid, "validate", row(ctx, rid).version, **TECH)
        ctx.workflow.act(rid, "release", row(ctx, rid).version, **DOC)
    config_file = tmp_path / "lis.toml"
    from lis.config import render_config

    config_file.write_text(render_config(ctx.config), encoding="utf-8")
    out = tmp_path / "xml4.xml"
    runner = CliRunner()
    result = runner.invoke(export, ["xml4", "--config", str(config_file), "--since", "2020-01-01", "-o", str(out)])
    assert result.exit_code == 0, result.output
    xml = out.read_text(encoding="utf-8")
    from xml.etree import ElementTree

    records = ElementTree.fromstring(xml).findall("./DSACH_CHI_TIET_CLS/CHI_TIET_CLS")
    assert [r.findtext("MA_CHI_SO") for r in records] == ["GLU", "CREA"]
    glu = records[0]
    assert glu.findtext("MA_LK") == "MALK-X4" and glu.findtext("STT") == "1" and glu.findtext("GIA_TRI") == "7.8"
    assert glu.findtext("DON_VI_DO") == "mmol/L" and glu.findtext("KET_LUAN") == "Cao"
    assert glu.findtext("MA_BS_DOC_KQ") == "doc" and len(glu.findtext("NGAY_KQ")) == 12
    assert glu.findtext("TEN_CHI_SO") == "Định lượng glucose"

    assert _until(lambda: _signed(ctx, order_id))
    with ctx.db.read() as session:
        pdf = session.exec(__import__("sqlmodel").select(SignedReport)
                           .where(SignedReport.order_id == order_id)).first().pdf
    good = tmp_path / "report.pdf"
    good.write_bytes(pdf)
    ok = runner.invoke(report, ["verify", "--config", str(config_file), str(good)])
    assert ok.exit_code == 0 and "signature OK" in ok.output, ok.output
    bad = tmp_path / "bad.pdf"
    data = bytearray(pdf)
    data[len(data) // 2] ^= 0x20
    bad.write_bytes(bytes(data))
    broken = runner.invoke(report, ["verify", "--config", str(config_file), str(bad)])
    assert broken.exit_code == 1


def _signed(ctx: LisContext, order_id: int) -> bool:
    from sqlmodel import select

    from lis.models import SignedReport

    with ctx.db.read() as session:
        return session.exec(select(SignedReport).where(SignedReport.order_id == order_id)).first() is not None
