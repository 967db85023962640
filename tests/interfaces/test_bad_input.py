"""Bad input on the delivery side: TLS failure, slow EMR, unreachable host (issue 7 "Bad input")."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interfaces.outbox import Destination
from interfaces.wiring import build_worker
from lis.config import EmrConfig
from lis.context import LisContext
from tests.interfaces.helpers import FakeEmr, ensure_validator, fast_settings, outbox_rows, release_order, wait_for

EMR = Destination("his", "hl7-mllp")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emr.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "emr.pem", directory / "emr-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _config(ctx: LisContext, port: int, *, tls: bool = False, timeout: float = 0.5):  # type: ignore[no-untyped-def]
    emr = EmrConfig(name="his", kind="hl7-mllp", host="127.0.0.1", port=port, tls=tls, timeout_seconds=timeout)
    return ctx.config.model_copy(update={"emr": [emr]})


def test_tls_failure_keeps_the_message_then_trusting_the_ca_delivers(ctx: LisContext, tmp_path: Path) -> None:
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="TLS1")
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        emr = FakeEmr("AA", ssl_context=server_ctx)
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port, tls=True), settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: "TLS handshake" in outbox_rows(ctx.db, "his")[0].last_error)
            row = outbox_rows(ctx.db, "his")[0]
            assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        finally:
            await worker.stop()
        (ctx.config.data_dir / "tls").mkdir(parents=True, exist_ok=True)
        (ctx.config.data_dir / "tls" / "his-ca.pem").write_bytes(cert.read_bytes())
        worker = build_worker(ctx.db, _config(ctx, port, tls=True), settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].status == "delivered")
        finally:
            await worker.stop()
            await emr.stop()
        assert emr.received == [outbox_rows(ctx.db, "his")[0].message_id]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_slow_emr_late_acks_are_never_taken_for_another_message(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    cat = ctx.catalog.get()
    for i in range(3):
        release_order(ctx.db, cat, [EMR], specimen=f"SLOW{i}")

    async def main() -> None:
        emr = FakeEmr("AA", delay=0.5)
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port, timeout=0.25), settings=fast_settings(lanes=1))
        await worker.start()
        try:
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].attempts >= 2)
            assert all(r.status == "pending" for r in outbox_rows(ctx.db, "his"))
            emr.delay = 0.05
            assert await wait_for(lambda: all(r.status == "delivered" for r in outbox_rows(ctx.db, "his")))
        finally:
            await worker.stop()
            await emr.stop()
        ids = [r.message_id for r in outbox_rows(ctx.db, "his")]
        firsts = [m for i, m in enumerate(emr.received) if m not in emr.received[:i]]
        assert firsts == ids  # in order; the retries re-sent the same MSH-10, nothing new was invented

    asyncio.run(asyncio.wait_for(main(), 60))


def test_unreachable_host_is_reported_and_nothing_is_lost(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="UNR1")
    config = ctx.config.model_copy(update={"emr": [EmrConfig(name="his", kind="hl7-mllp", host="no-such-host.invalid",
                                                             port=2575, timeout_seconds=1)]})

    async def main() -> None:
        worker = build_worker(ctx.db, config, settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: "cannot connect to his" in outbox_rows(ctx.db, "his")[0].last_error)
        finally:
            await worker.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert outbox_rows(ctx.db, "his")[0].status == "pending"
