"""Re-importing a layer as planners do it: upload, preview, the diff, apply; and the CLI.

An inspector's visit and status move recorded between two imports must stay on the same
hotspot, whatever the order of the rows in the new file; rows missing from it archive
their hotspot (its page and history stay), new rows become new hotspots, and nothing
changes before the planner has seen the diff and applied it.
"""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point

from layers.query import FeatureQuery
from layers.store import SQLiteStore
from tests.ingest_files import tm3, write_shapefile, zip_files
from tests.support import csrf_token, login

CODES = {"DN-01": "Bãi rác chợ Tân Phú", "DN-02": "Suối Đồng Xoài", "DN-03": "Cơ sở mủ cao su",
         "DN-04": "Điểm tập kết chợ", "DN-05": "Bãi rác mới đường Phú Riềng Đỏ"}
FORM = {"kind": "hotspot", "title": "Điểm nóng có mã", "slug": "diem-ma", "map_name": "ten",
        "map_status": "trang_thai", "map_category": "loai", "map_severity": "muc_do",
        "map_reported_at": "ngay", "confirm": "on"}


def hotspot_zip(tmp_path: Path, codes: list[str], severity: dict[str, int] | None = None,
                name: str = "diem") -> bytes:
    """The agency's file: one row per code, in the given order, at the code's own place."""
    frame = gpd.GeoDataFrame({
        "MA": codes,
        "TEN": [CODES[c] for c in codes],
        "TRANG_THAI": ["Tiếp nhận"] * len(codes),
        "LOAI": ["illegal_dumping"] * len(codes),
        "MUC_DO": [(severity or {}).get(c, 2) for c in codes],
        "NGAY": ["05/03/2024"] * len(codes),
    }, geometry=[Point(*tm3(106.85 + int(c[-1]) * 0.002, 11.52)) for c in codes], crs=9212)
    files = write_shapefile(tmp_path / name, name, frame)
    return zip_files(tmp_path / f"{name}.zip", files).read_bytes()


def upload(client, data: bytes, name: str = "diem.zip") -> str:
    response = client.post("/layers/upload", data={
        "file": (io.BytesIO(data), name), "csrf_token": csrf_token(client, "/layers/")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    return response.headers["Location"]


def by_name(store, slug: str = "diem-ma") -> dict[str, object]:
    return {f.properties["name"]: f for f in store.query_features(slug, FeatureQuery()).features}


@pytest.fixture
def planner(app):
    return login(app.test_client(), "planner")


@pytest.fixture
def published(app, planner, tmp_path):
    """The first import of the coded file, through the pages; the key MA is guessed."""
    token_url = upload(planner, hotspot_zip(tmp_path, ["DN-01", "DN-02", "DN-03", "DN-04"]))
    page = planner.get(token_url + "?kind=hotspot").get_data(as_text=True)
    assert re.search(r'<select name="key" id="key">.*<option value="ma" selected>', page, re.S)
    done = planner.post(token_url, data={**FORM, "key": "ma",
                                         "csrf_token": csrf_token(planner, token_url)})
    assert done.status_code == 302, done.get_data(as_text=True)
    return app.extensions["gis_store"]


def staff_work(app, feature) -> None:
    """An inspector records a visit and verifies the hotspot, through its page."""
    inspector = login(app.test_client(), "inspector")
    page = f"/hotspots/diem-ma/{feature.id}"
    token = csrf_token(inspector, page)
    visit = inspector.post(page + "/inspections", data={
        "csrf_token": token, "inspected_on": "2024-03-06", "finding": "Rác tràn ra lòng đường"})
    assert visit.status_code == 302
    moved = inspector.post(page + "/status", data={
        "csrf_token": token, "to": "verified", "note": "Đã xác minh tại chỗ",
        "version": feature.version})
    assert moved.status_code == 302


def review(planner, tmp_path, codes, **kwargs):
    """Upload the next file and ask to replace the layer: the confirmation page."""
    token_url = upload(planner, hotspot_zip(tmp_path, codes, name="lan2", **kwargs))
    form = {**FORM, "target": "diem-ma", "key": "ma", "csrf_token": csrf_token(planner, token_url)}
    return token_url, form, planner.post(token_url, data=form)


def count(html: str, what: str) -> int:
    return int(re.search(rf'id="count-{what}">(\d+)<', html).group(1))


@pytest.mark.parametrize("order", [["DN-01", "DN-02", "DN-03", "DN-04"],
                                   ["DN-04", "DN-03", "DN-02", "DN-01"]])
def test_reimport_keeps_each_hotspots_history_and_status(app, planner, published, tmp_path,
                                                          order):
    before = by_name(published)
    verified = before[CODES["DN-02"]]
    staff_work(app, verified)
    _, form, confirm = review(planner, tmp_path, order)
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and 'id="conflicts"' in html
    assert (count(html, "added"), count(html, "archived"), count(html, "conflicts")) == (0, 0, 1)
    assert published.get_layer("diem-ma").data_version == 1  # nothing changed yet
    assert by_name(published)[CODES["DN-02"]].properties["status"] == "verified"
    token_url = confirm.request.path
    applied = planner.post(token_url, data={**form, "apply": "1", "expected_version": "1"})
    assert applied.status_code == 302
    after = by_name(published)
    assert {n: f.id for n, f in after.items()} == {n: f.id for n, f in before.items()}
    assert after[CODES["DN-02"]].properties["status"] == "verified"  # the staff's value
    inspector = login(app.test_client(), "inspector")
    for name, feature in after.items():
        page = inspector.get(f"/hotspots/diem-ma/{feature.id}").get_data(as_text=True)
        assert ("Rác tràn ra lòng đường" in page) == (name == CODES["DN-02"])
        assert ("Đã xác minh tại chỗ" in page) == (name == CODES["DN-02"])


def test_rows_added_removed_and_changed_and_a_conflict_the_file_wins(app, planner, published,
                                                                      tmp_path):
    before = by_name(published)
    staff_work(app, before[CODES["DN-02"]])
    token_url, form, confirm = review(planner, tmp_path, ["DN-05", "DN-02", "DN-01"],
                                      severity={"DN-01": 3})
    html = confirm.get_data(as_text=True)
    assert (count(html, "added"), count(html, "changed"), count(html, "archived"),
            count(html, "conflicts")) == (1, 1, 2, 1)
    assert CODES["DN-05"] in html and CODES["DN-04"] in html  # examples of added and archived
    win = f"win_{before[CODES['DN-02']].id}_status"
    assert f'name="{win}"' in html and f'name="{win}" aria-label' in html
    stale = planner.post(token_url, data={**form, "apply": "1", "expected_version": "0"})
    assert stale.status_code == 409
    applied = planner.post(token_url, data={**form, "apply": "1", "expected_version": "1",
                                            win: "on"})
    assert applied.status_code == 302
    after = by_name(published)
    assert sorted(after) == sorted(CODES[c] for c in ["DN-01", "DN-02", "DN-05"])
    assert after[CODES["DN-01"]].id == before[CODES["DN-01"]].id
    assert after[CODES["DN-01"]].properties["severity"] == 3
    assert after[CODES["DN-02"]].properties["status"] == "reported"  # the planner chose
    assert after[CODES["DN-05"]].id > max(f.id for f in before.values())
    gone = before[CODES["DN-04"]]
    inspector = login(app.test_client(), "inspector")
    page = inspector.get(f"/hotspots/diem-ma/{gone.id}")
    assert page.status_code == 200 and 'id="archived"' in page.get_data(as_text=True)
    assert "lưu trữ: không có trong lần nhập" in page.get_data(as_text=True)  # its timeline
    assert 'id="status-form"' not in page.get_data(as_text=True)  # and it takes no edits
    api = inspector.get("/api/layers/diem-ma/features").json
    assert gone.id not in [f["id"] for f in api["features"]]
    # Restoring the first version asks first too, then brings DN-03 and DN-04 back by id.
    token = csrf_token(planner, "/layers/diem-ma/versions")
    shown = planner.post("/layers/diem-ma/versions/1/restore", data={"csrf_token": token})
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200 and count(text, "archived") == 1  # DN-05
    assert published.get_layer("diem-ma").data_version == 2
    done = planner.post("/layers/diem-ma/versions/1/restore", data={
        "csrf_token": token, "apply": "1", "expected_version": "2"})
    assert done.status_code == 302
    assert {n: f.id for n, f in by_name(published).items()} == {
        n: f.id for n, f in before.items()}


def test_duplicate_keys_and_a_missing_key_column_get_a_clear_400(planner, published, tmp_path):
    token_url = upload(planner, hotspot_zip(tmp_path, ["DN-01", "DN-01"], name="trung"))
    form = {**FORM, "target": "diem-ma", "key": "ma", "csrf_token": csrf_token(planner, token_url)}
    twice = planner.post(token_url, data=form)
    assert twice.status_code == 400 and "DN-01" in twice.get_data(as_text=True)
    missing = planner.post(token_url, data={**form, "key": "khong_co"})
    assert missing.status_code == 400 and "khong_co" in missing.get_data(as_text=True)
    assert published.get_layer("diem-ma").data_version == 1


def test_api_replace_answers_the_diff_then_applies_it(app, planner, published, tmp_path):
    before = by_name(published)
    data = hotspot_zip(tmp_path, ["DN-04", "DN-01"], name="api")
    headers = {"X-CSRFToken": csrf_token(planner, "/layers/")}

    def post(**fields):
        return planner.post("/api/layers/import", headers=headers,
                            content_type="multipart/form-data",
                            data={"file": (io.BytesIO(data), "api.zip"), **FORM,
                                  "target": "diem-ma", **fields})

    diff = post().json  # the key MA is guessed when a script names none
    assert diff["matched_by"] == "key" and diff["counts"]["archived"] == 2
    assert [e["key"] for e in diff["examples"]["archived"]] == ["DN-02", "DN-03"]
    assert published.get_layer("diem-ma").data_version == 1
    done = post(apply="1", expected_version=str(diff["data_version"]))
    assert done.status_code == 201 and done.json["data_version"] == 2
    assert by_name(published)[CODES["DN-04"]].id == before[CODES["DN-04"]].id


def test_cli_replace_shows_the_diff_and_applies_it_with_yes(app, published, tmp_path):
    before = by_name(published)
    staff_work(app, before[CODES["DN-02"]])
    path = tmp_path / "lan3.zip"
    path.write_bytes(hotspot_zip(tmp_path, ["DN-04", "DN-03", "DN-02"], name="lan3"))
    runner = app.test_cli_runner()
    args = ["layers", "import", str(path), "--kind", "hotspot", "--replace", "diem-ma",
            "--key", "MA"]
    shown = runner.invoke(args=args)
    assert shown.exit_code == 1 and "--yes" in shown.output
    assert "0 added" in shown.output and "1 archived" in shown.output
    assert "1 conflicts" in shown.output and "status: staff 'verified'" in shown.output
    assert published.get_layer("diem-ma").data_version == 1
    done = runner.invoke(args=[*args, "--yes"])
    assert done.exit_code == 0, done.output
    after = by_name(published)
    assert after[CODES["DN-02"]].id == before[CODES["DN-02"]].id
    assert after[CODES["DN-02"]].properties["status"] == "verified"
    assert CODES["DN-01"] not in after
    restore = runner.invoke(args=["layers", "restore", "diem-ma", "1"])
    assert restore.exit_code == 1 and "1 changed" in restore.output
    restored = runner.invoke(args=["layers", "restore", "diem-ma", "1", "--yes"])
    assert restored.exit_code == 0 and "version 3" in restored.output
    assert {n: f.id for n, f in by_name(published).items()} == {
        n: f.id for n, f in before.items()}


def test_a_schema_4_file_is_upgraded_keeping_ids_index_and_staff_edits(tmp_path):
    """A file written before ids were AUTOINCREMENT keeps its ids and R*Tree; its baselines
    come from the audit log, and new ids pass every id that history names."""
    from layers.workflow import move_status
    from tests.test_store import keyed_rows

    path = tmp_path / "old.sqlite"
    store = SQLiteStore(path)
    store.create_layer("hs", "Điểm", "hotspot", features=keyed_rows("ABC"))  # ids 1-3
    move_status(store, "hs", 2, "verified", note="Đã xác minh", actor="lan", expected_version=1)
    store.create_layer("x", "Khác", "hotspot", features=keyed_rows("DE"))  # ids 4-5
    store.add_inspection("x", 5, inspected_on="2024-03-02", inspector="lan", finding="Ghi")
    store.delete_layer("x")  # history still names id 5
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE old (id INTEGER PRIMARY KEY, layer_id INTEGER NOT NULL, geom BLOB NOT NULL,
            props TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        INSERT INTO old SELECT id, layer_id, geom, props, version, created_at, updated_at
            FROM features;
        DROP TABLE features; ALTER TABLE old RENAME TO features;
        ALTER TABLE feature_archive DROP COLUMN feature_id;
        DELETE FROM sqlite_sequence; PRAGMA user_version = 4;""")
    con.close()
    upgraded = SQLiteStore(path)
    assert [f.id for f in upgraded.query_features("hs", FeatureQuery(
        bbox=(106.85655, 11.519, 106.85665, 11.521))).features] == [2]  # B, through the R*Tree
    assert upgraded.get_feature("hs", 2).properties["status"] == "verified"
    # The baseline is what the file said before the inspector's move.
    base = sqlite3.connect(path).execute("SELECT json_extract(base_props, '$.status')"
                                         " FROM features WHERE id = 2").fetchone()[0]
    assert base == "reported"
    upgraded.replace_features("hs", keyed_rows("ABC"))  # no key: 1-3 archived, 6-8 added
    assert sorted(f.id for f in upgraded.query_features("hs", FeatureQuery()).features) == [
        6, 7, 8]
    assert upgraded.get_feature("hs", 2, archived=True).properties["status"] == "verified"


def test_a_schema_4_postgis_database_is_upgraded_with_baselines_from_the_audit_log():
    """The PostGIS twin: schema 5 adds keys, baselines and archiving to a live database."""
    import psycopg

    from layers.store.postgis import PostGISStore
    from layers.workflow import move_status
    from tests.pg_cluster import cluster
    from tests.test_store import keyed_rows

    pg = cluster()
    dsn = pg.new_schema()
    try:
        store = PostGISStore(dsn)
        store.create_layer("hs", "Điểm", "hotspot", features=keyed_rows("ABC"))
        [a, b, c] = ids = ids_now(store)
        move_status(store, "hs", b, "verified", note="Đã xác minh", actor="lan",
                    expected_version=1)
        store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE features DROP COLUMN import_key, DROP COLUMN base_geom,"
                         " DROP COLUMN base_props, DROP COLUMN archived_at;"
                         " ALTER TABLE feature_archive DROP COLUMN feature_id;"
                         " UPDATE gis_schema SET version = 4")
        upgraded = PostGISStore(dsn)
        assert ids_now(upgraded) == ids
        with psycopg.connect(dsn, autocommit=True) as conn:
            bases = dict(conn.execute("SELECT id, base_props ->> 'status' FROM features"
                                      ).fetchall())
        assert bases == {a: "reported", b: "reported", c: "reported"}
        upgraded.replace_features("hs", keyed_rows("AB"))  # no key: all archived, two added
        assert upgraded.count_features("hs") == 2
        assert upgraded.get_feature("hs", b, archived=True).properties["status"] == "verified"
        upgraded.close()
    finally:
        pg.drop_schema(dsn)


def ids_now(store) -> list[int]:
    return [f.id for f in store.query_features("hs", FeatureQuery()).features]
