"""The REST API application (``/api/v1``); NiceGUI mounts onto the same FastAPI app."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from lis.api import auth, orders, results, workflow, workflow_rules
from lis.api.workflow import workflow_error_handler
from lis.context import LisContext
from lis.services.workflow.errors import WorkflowError

API_PREFIX = "/api/v1"


def lis_version() -> str:
    try:
        return version("open-lis")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def create_api(ctx: LisContext) -> FastAPI:
    app = FastAPI(
        title="Open LIS", version=lis_version(), openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs", redoc_url=None,
    )
    app.state.lis = ctx
    app.add_exception_handler(WorkflowError, workflow_error_handler)
    v1 = APIRouter(prefix=API_PREFIX)

    @v1.get("/health", tags=["health"])
    def health(request: Request) -> JSONResponse:
        """Ready when the database answers; no authentication (load balancers, acceptance tests)."""
        lis: LisContext = request.app.state.lis
        try:
            with lis.db.read() as session:
                session.connection().exec_driver_sql("SELECT 1")
        except Exception as exc:  # the database is down: not ready
            return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "version": lis_version(), "database": lis.db.dialect,
                             "site": lis.config.site.name, "instruments": len(lis.config.instruments)})

    v1.include_router(auth.router)
    v1.include_router(orders.router)
    v1.include_router(results.router)
    v1.include_router(workflow.router)
    v1.include_router(workflow_rules.router)
    app.include_router(v1)
    return app
