"""Fixtures for the web tests: NiceGUI's simulated user on the LIS pages, and staff users of each role."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from nicegui import core, ui
from nicegui.functions.download import download
from nicegui.functions.navigate import Navigate
from nicegui.functions.notify import notify
from nicegui.testing.general import nicegui_reset_globals, prepare_simulation
from nicegui.testing.general_fixtures import pytest_configure as nicegui_pytest_configure
from nicegui.testing.user import User

from lis.context import LisContext
from lis.db import Database
from lis.services.users import add_user
from tests.conftest import _database_for, _wipe

PASSWORD = "pw-1234"
STAFF = {"tech": "technician", "val": "validator", "val2": "validator", "clin": "clinician", "adm": "admin",
         "mgr": "manager"}


def pytest_configure(config: pytest.Config) -> None:
    nicegui_pytest_configure(config)  # a temporary storage path for app.storage


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       _migrated: dict[str, Database]) -> Database:
    """The web tests check pages, not SQL dialects (the services' own tests run on both): SQLite only."""
    database = _database_for("sqlite", tmp_path_factory, _migrated, request)
    _wipe(database)
    return database


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def staff(ctx: LisContext) -> dict[str, str]:
    with ctx.db.write() as session:
        for username, role in STAFF.items():
            add_user(session, username, role, PASSWORD, full_name=f"<i>{username}</i> Nguyễn", actor="test")
    return STAFF


@pytest.fixture
async def new_user(ctx: LisContext, staff: dict[str, str]) -> AsyncIterator[Callable[[], User]]:
    """A factory of simulated browsers (each its own cookies, so its own session) on the LIS pages."""
    from web import pages

    with nicegui_reset_globals():
        os.environ["NICEGUI_USER_SIMULATION"] = "true"
        try:
            prepare_simulation()
            pages.register(ctx)
            ui.run(storage_secret="web test secret")
            async with core.app.router.lifespan_context(core.app), AsyncExitStack() as stack:
                def make() -> User:
                    client = httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test")
                    stack.push_async_callback(client.aclose)
                    return User(client)

                yield make
        finally:
            os.environ.pop("NICEGUI_USER_SIMULATION", None)
            ui.navigate = Navigate()
            ui.notify = notify
            ui.download = download


async def login(user: User, username: str, password: str = PASSWORD, *, path: str = "/worklist") -> None:
    await user.open(f"/login?next={path}")
    user.find(kind=ui.input, content="Tên đăng nhập").type(username)
    user.find(kind=ui.input, content="Mật khẩu").type(password)
    user.find(kind=ui.button, content="Đăng nhập").click()


async def see(user: User, text: str, retries: int = 60) -> None:
    """``should_see`` with patience for work done in a thread (argon2, database)."""
    await user.should_see(text, retries=retries)


async def until(condition: Callable[[], object], timeout: float = 20.0) -> object:
    """Wait for a condition that a background handler makes true (generous: CI machines are busy)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
