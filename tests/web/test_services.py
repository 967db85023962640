"""The lis services written for the web pages, on SQLite and PostgreSQL (the queries the pages run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lis.config import Config
from lis.context import LisContext
from lis.db import Database
from lis.services import worklist as wl
from lis.services.audit_log import AuditQuery, search
from lis.services.dashboard import workload
from lis.services.journal import AssignError, assign_to_specimen, list_raw
from lis.services.patient_record import cumulative, find_patients
from lis.services.result_comments import CommentError, add_comment
from tests.conftest import TEST_INSTRUMENTS, _database_for, _wipe
from tests.web.data import order, results


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def both_ctx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             _migrated: dict[str, Database], tmp_path: Path) -> LisContext:
    from drivers.wiring import register_parsers
    from lis.services.catalog import import_catalog, seed_rows

    database = _database_for(request.param, tmp_path_factory, _migrated, request)
    _wipe(database)
    config = Config(data_dir=tmp_path, database={"url": database.engine.url.render_as_string(hide_password=False)},
                    instruments=TEST_INSTRUMENTS)
    context = LisContext(config, database)
    register_parsers(context.parsers)
    tests, panels, ranges = seed_rows()
    with database.write() as session:
        import_catalog(session, tests, panels, ranges, source="seed", actor="test")
    return context


def test_worklist_page_groups_orders_filters_and_pages(both_ctx: LisContext) -> None:
    ctx = both_ctx
    order(ctx, "A-0", ["GLU"], national_id="001190000077")
    results(ctx, "A-0", [("GLU", "5.0")])
    order(ctx, "A-1", ["GLU", "K"], national_id="001190000077")
    glu, k = results(ctx, "A-1", [("GLU", "8.0"), ("K", "9.9")])
    order(ctx, "A-2", ["NA"], priority="stat")
    results(ctx, "A-2", [("NA", "140")])
    with ctx.db.read() as session:
        page = wl.page(session, wl.WorklistFilter(), limit=10)
        assert page.total == 4 and [r.specimen for r in page.rows] == ["A-2", "A-0", "A-1", "A-1"]
        by_id = {r.id: r for r in page.rows}
        assert by_id[glu].previous_value == "5.0" and by_id[glu].delta_change == pytest.approx(3.0)
        assert by_id[k].critical and by_id[glu].lis_flags == "H"
        assert [r.id for r in wl.page(session, wl.WorklistFilter(flag="critical")).rows] == [k]
        assert wl.page(session, wl.WorklistFilter(priority="stat")).total == 1
        second = wl.page(session, wl.WorklistFilter(), offset=2, limit=2)
        assert [r.specimen for r in second.rows] == ["A-1", "A-1"] and second.total == 4
        normal = {i for i, _, _ in wl.normal_ids(session, wl.WorklistFilter())}
        assert glu not in normal and k not in normal and len(normal) == 2


def test_comment_assign_dashboard_audit_and_search(both_ctx: LisContext) -> None:
    ctx = both_ctx
    order(ctx, "C-1", ["GLU"], name="Nông Thị Hoa")
    (rid,) = results(ctx, "C-1", [("GLU", "5.5")])
    with ctx.db.write() as session:
        add_comment(session, rid, 2, "mẫu đục", "tech")
    with pytest.raises(CommentError, match="changed by tech"), ctx.db.write() as session:
        add_comment(session, rid, 2, "again", "tech")
    (loose,) = results(ctx, "NOBODY", [("GLU", "6.0")], evaluate=False)
    with pytest.raises(AssignError, match="not registered"), ctx.db.write() as session:
        assign_to_specimen(session, loose, "NOPE", "tech")
    with ctx.db.write() as session:
        assert assign_to_specimen(session, loose, "C-1", "tech").status == "received"
    with ctx.db.read() as session:
        load = workload(session, "Asia/Ho_Chi_Minh")
        assert load.results_today == 2 and load.orders_today == 1 and load.unmatched == 0
        events, total = search(session, AuditQuery(action="result."), limit=5)
        assert total == 2 and {e.action for e in events} == {"result.comment", "result.assign"}
        assert [p.name for p in find_patients(session, "nong thi hoa")] == ["Nông Thị Hoa"]
        assert [p.name for p in find_patients(session, "C-1")] == ["Nông Thị Hoa"]
        assert list_raw(session, limit=1)[1] == 2
    ctx.workflow.act(rid, "validate", 3, actor="tech", role="technician")
    with ctx.db.read() as session:
        table = cumulative(session, find_patients(session, "C-1")[0].id or 0)
        assert list(table.rows) == ["GLU"] and table.series["GLU"][0][1] == 5.5
