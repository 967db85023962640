"""``lis demo``: a working demo lab in one command (SQLite, catalogue, users, patients, orders).

Idempotent: a second run reuses the data dir and adds nothing twice. The demo users' password is
``demo`` — printed at start with a warning, because a demo is not a production installation.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
from sqlmodel import Session, func, select

from lis.config import Config, InstrumentConfig, WebConfig, load_config, render_config
from lis.db import Database
from lis.models import Order, TestDefinition, User
from lis.services.catalog import import_catalog, load_snapshot, seed_rows
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData
from lis.services.users import add_user

DEMO_USERS = (("admin", "admin", "Quản trị hệ thống"), ("tech", "technician", "KTV Nguyễn Thị Mai"),
              ("doctor", "validator", "BS. Trần Văn Hùng"))
DEMO_PASSWORD = "demo"

_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
           "Dương", "Lý", "Nông", "Trịnh", "Mai", "Đinh")
_MIDDLE_M = ("Văn", "Minh", "Quang", "Đức", "Hữu", "Thành")
_MIDDLE_F = ("Thị", "Thu", "Ngọc", "Thanh", "Mỹ", "Kim")
_GIVEN_M = ("An", "Bình", "Cường", "Dũng", "Hùng", "Khánh", "Long", "Nam", "Phúc", "Sơn", "Tuấn", "Việt")
_GIVEN_F = ("Anh", "Bích", "Dung", "Hoa", "Hương", "Lan", "Linh", "Ngân", "Quỳnh", "Thảo", "Trang", "Yến")
_ORDER_SETS = (["CBC"], ["CBC", "GLU"], ["LFT", "RENAL"], ["LIPID", "GLU"], ["ELEC", "RENAL"], ["THYROID"],
               ["CBC", "CRP"], ["HBA1C", "GLU", "LIPID"], ["COAG"], ["TNTHS", "CK", "ELEC"])
_PROVINCES = ("001", "079", "048", "031", "092", "011", "036", "040")  # CCCD province codes


def demo_config(data_dir: Path, host: str, port: int) -> Config:
    """The demo's lis.toml: SQLite in the data dir and one listener per protocol next to the web port."""
    return Config(
        data_dir=data_dir,
        web=WebConfig(host=host, port=port),
        instruments=[
            InstrumentConfig(name="demo-astm", profile="generic-astm", protocol="astm", transport="tcp-server",
                             host="127.0.0.1", port=port + 1, model="ASTM analyser (simulated)"),
            InstrumentConfig(name="demo-hl7", profile="generic-hl7", protocol="hl7", transport="tcp-server",
                             host="127.0.0.1", port=port + 2, model="HL7 analyser (simulated)"),
        ],
    )


def _patient(rng: random.Random, i: int) -> PatientData:
    sex = rng.choice("MF")
    middle, given = (_MIDDLE_M, _GIVEN_M) if sex == "M" else (_MIDDLE_F, _GIVEN_F)
    name = f"{rng.choice(_FAMILY)} {rng.choice(middle)} {rng.choice(given)}"
    birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80))
    century = (0 if birth.year < 2000 else 2) + (0 if sex == "M" else 1)
    cccd = f"{rng.choice(_PROVINCES)}{century}{birth.year % 100:02d}{i:06d}"
    return PatientData(name=name, national_id=cccd, sex=sex, birth_date=birth,
                       insurance_number=f"DN4{rng.randrange(10**11):011d}"[:15], mrn=f"BN{i:06d}")


def seed_demo(session: Session, *, patients: int = 30, today: date | None = None) -> dict[str, int]:
    """Seed catalogue, users, patients and orders unless already there; return what was added."""
    added = {"tests": 0, "users": 0, "orders": 0}
    if session.exec(select(func.count()).select_from(TestDefinition)).one() == 0:
        tests, panels, ranges = seed_rows()
        added["tests"] = import_catalog(session, tests, panels, ranges, source="demo catalogue", actor="demo").tests
    for username, role, full_name in DEMO_USERS:
        if session.exec(select(User).where(User.username == username)).first() is None:
            add_user(session, username, role, DEMO_PASSWORD, full_name=full_name, actor="demo")
            added["users"] += 1
    if session.exec(select(func.count()).select_from(Order)).one() == 0:
        session.flush()
        catalog = load_snapshot(session)
        rng = random.Random(2026)
        day = (today or datetime.now(UTC).date()).strftime("%y%m%d")
        for i in range(1, patients + 1):
            request = OrderRequest(
                patient=_patient(rng, i), specimen_id=f"{day}{i:04d}", tests=list(rng.choice(_ORDER_SETS)),
                priority="stat" if rng.random() < 0.15 else "routine", placer_number=f"HIS{day}{i:05d}",
                ordering_clinician=rng.choice(("BS. Lê Minh Tâm", "BS. Phạm Thu Hà", "BS. Đỗ Quang Vinh")),
                department=rng.choice(("Khoa Nội", "Khoa Ngoại", "Khoa Cấp cứu", "Phòng khám")), source="demo",
                collected_at=datetime.now(UTC) - timedelta(minutes=rng.randrange(10, 240)),
            )
            create_order(session, catalog, request, "demo")
            added["orders"] += 1
    return added


def prepare_demo(data_dir: Path, host: str, port: int) -> tuple[Path, dict[str, int]]:
    """Write lis.toml if missing, migrate, seed. Returns (config path, what was added)."""
    from lis.migrate import upgrade

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "lis.toml"
    if not config_path.exists():
        config_path.write_text(render_config(demo_config(data_dir, host, port)), encoding="utf-8")
    config = load_config(config_path, env={})
    db = Database.from_url(config.database_url)
    upgrade(db)
    with db.write() as session:
        added = seed_demo(session)
    db.dispose()
    from interfaces.signing import create_demo_pki

    # demo signing certificates for the users who release results (Circular 13/2025 signed reports)
    create_demo_pki(data_dir, {u: name for u, role, name in DEMO_USERS if role in ("validator", "admin")})
    return config_path, added


def run_demo(data_dir: Path, *, host: str, port: int, serve_after: bool) -> None:
    from lis.cli.common import fail, setup_logging
    from lis.cli.server import serve
    from lis.config import ConfigError
    from lis.db import DatabaseUnavailable

    try:
        config_path, added = prepare_demo(data_dir, host, port)
        config = load_config(config_path, env={})
    except (ConfigError, DatabaseUnavailable, OSError) as exc:
        fail(str(exc))
    config = config.model_copy(update={"web": config.web.model_copy(update={"host": host, "port": port})})
    click.echo(f"Open LIS demo in {config.data_dir} (config {config_path})")
    if any(added.values()):
        click.echo(f"  seeded: {added['tests']} tests, {added['users']} users, {added['orders']} orders")
    click.echo(f"  web:  http://{host}:{port}/   API: http://{host}:{port}/api/v1/docs")
    click.echo("  users: " + ", ".join(f"{u} ({r})" for u, r, _ in DEMO_USERS) + f" — password '{DEMO_PASSWORD}'")
    click.secho("  WARNING: demo accounts with a known password; never use this data dir in production.",
                fg="yellow", err=True)
    if serve_after:
        setup_logging(config.logging.level)
        analysers = start_simulated_analysers(config_path, config)
        if analysers:
            click.echo(f"  analysers: {len(analysers)} simulated (demo-astm, demo-hl7), one message every ~15 s")
        try:
            serve(config, host=host, port=port)
        finally:
            for proc in analysers:
                proc.terminate()
            for proc in analysers:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


SIMULATED = {"demo-astm": ["--query", "--qc-every", "6"], "demo-hl7": ["--qc-every", "8"]}


def start_simulated_analysers(config_path: Path, config: Config, rate: float = 1 / 15) -> list[subprocess.Popen[bytes]]:
    """One simulated analyser per demo instrument (``lis simulate`` subprocesses): they take the demo's pending
    orders (``--from-config``), ask the LIS first where the profile does host queries, and send calmly."""
    procs: list[subprocess.Popen[bytes]] = []
    for inst in config.instruments:
        extra = SIMULATED.get(inst.name)
        if extra is None or not inst.enabled or inst.transport != "tcp-server" or inst.port is None:
            continue
        command = [sys.executable, "-m", "lis.cli.main", "simulate", "--profile", inst.profile, "--to",
                   f"tcp://{inst.host}:{inst.port}", "--from-config", str(config_path), "--instrument", inst.name,
                   "--count", "0", "--rate", f"{rate:.4f}", "--quiet", "--seed", str(len(procs) + 1),
                   "--parent-pid", str(os.getpid()), *extra]
        procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent if sys.platform == "linux" else None))
    return procs


def _die_with_parent() -> None:
    """Linux: the simulated analyser gets SIGTERM when ``lis demo`` dies, even by SIGKILL (prctl PDEATHSIG)."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError):  # without it the simulator's own --parent-pid watchdog still ends it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
