"""The Store contract on PostGIS: the same tests as test_store.py and test_workflow.py.

The star imports collect those modules' tests (and their fixtures) here a second time;
the ``store`` fixture below overrides conftest's SQLite one, so they run on a fresh
PostGIS schema each. A private cluster is started once per test process
(tests/pg_cluster.py); missing PostgreSQL/PostGIS binaries fail these tests loudly.

Three tests of test_store.py name SQLite itself; they are redefined below with the same
name (so they replace the imported ones) as their PostGIS equivalents:

- test_data_survives_reopening: reopens a SQLite file -> reopens the same database.
- test_a_store_written_by_a_newer_version_is_refused: PRAGMA user_version -> the
  gis_schema table.
- test_batched_writes_name_the_right_feature_and_stay_atomic: patches SQLiteStore.BATCH
  -> patches PostGISStore.BATCH, then runs the original test body.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from shapely.geometry import Point, Polygon

import tests.test_store as _contract
from layers.errors import InvalidFeature
from layers.kinds import FieldDef
from layers.query import FeatureQuery, parse_query
from layers.store.postgis import PostGISStore
from tests.pg_cluster import Cluster, ClusterError, cluster
from tests.test_store import *  # noqa: F403 - the Store contract, collected again here
from tests.test_store import hotspot
from tests.test_workflow import *  # noqa: F403 - the workflow contract, collected again


@pytest.fixture(scope="session")
def pg() -> Cluster:
    try:
        return cluster()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_dsn(pg: Cluster) -> Iterator[str]:
    dsn = pg.new_schema()
    yield dsn
    pg.drop_schema(dsn)


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PostGISStore]:  # overrides conftest's SQLite store
    s = PostGISStore(pg_dsn)
    yield s
    s.close()


# -- PostGIS equivalents of the SQLite-specific contract tests ------------------------------
def test_data_survives_reopening(pg_dsn):
    first = PostGISStore(pg_dsn)
    first.create_layer("hotspots", "Điểm nóng", "hotspot")
    first.add_features("hotspots", [(Point(106.85, 11.52), hotspot())])
    first.close()
    again = PostGISStore(pg_dsn)  # the schema is there already: nothing is re-created
    assert again.count_features("hotspots") == 1
    again.close()


def test_a_store_written_by_a_newer_version_is_refused(pg_dsn):
    PostGISStore(pg_dsn).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE gis_schema SET version = 99")
    with pytest.raises(RuntimeError, match="newer gis_service"):
        PostGISStore(pg_dsn)


def test_batched_writes_name_the_right_feature_and_stay_atomic(hotspots, monkeypatch):
    monkeypatch.setattr(PostGISStore, "BATCH", 3)
    _contract.test_batched_writes_name_the_right_feature_and_stay_atomic(hotspots, monkeypatch)


# -- PostGIS-only checks --------------------------------------------------------------------
def test_a_database_without_postgis_gets_it_or_a_clear_error(pg):
    name, role = f"plain_{os.getpid()}", f"owner_{os.getpid()}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE DATABASE {name} OWNER {role}")  # from template1: no PostGIS
        conn.execute(f"CREATE DATABASE {name}_su")
    try:
        as_owner = psycopg.conninfo.make_conninfo(pg.dsn(name), user=role)
        with pytest.raises(RuntimeError, match="CREATE EXTENSION postgis"):
            PostGISStore(as_owner)  # PostGIS is not a trusted extension
        with psycopg.connect(pg.dsn(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")  # what the message asks a DBA to do
        PostGISStore(as_owner).close()  # now the owner creates the schema
        PostGISStore(pg.dsn(f"{name}_su")).close()  # a superuser's store adds it itself
    finally:
        pg.drop_database(pg.dsn(name))
        pg.drop_database(pg.dsn(f"{name}_su"))
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_integer_choices_filter_as_integers(hotspots):
    ids = hotspots.add_features("hotspots", [
        (Point(106.85, 11.52), {**hotspot(), "severity": s}) for s in (1, 2, 3, 2)])
    fields = hotspots.get_layer("hotspots").fields
    query = parse_query({"severity": ["2", "3"]}, fields)
    assert query.equals == {"severity": (2, 3)}
    assert [f.id for f in hotspots.query_features("hotspots", query).features] == ids[1:]
    text = FeatureQuery(equals={"severity": ("2",)})  # JSON equality: "2" is not 2
    assert hotspots.query_features("hotspots", text).matched == 0


def test_bbox_matches_the_shape_not_its_bounding_box(store):
    store.create_layer("wards", "Phường", "ward")
    # An L-shaped ward: its bounding box covers the query box, the ward itself does not.
    ell = Polygon([(106.80, 11.50), (106.90, 11.50), (106.90, 11.51), (106.81, 11.51),
                   (106.81, 11.60), (106.80, 11.60)])
    [fid] = store.add_features("wards", [(ell, {"code": "1", "name": "x", "type": "xa"})])
    inside_box_not_ward = FeatureQuery(bbox=(106.85, 11.55, 106.86, 11.56))
    assert store.query_features("wards", inside_box_not_ward).features == []
    across_the_arm = FeatureQuery(bbox=(106.805, 11.55, 106.86, 11.56))
    assert [f.id for f in store.query_features("wards", across_the_arm).features] == [fid]
    touching = FeatureQuery(bbox=(106.90, 11.40, 107.0, 11.50))  # shares one corner
    assert store.query_features("wards", touching).matched == 1
    assert store.query_features("wards", FeatureQuery(bbox=(106.91, 11.4, 107.0, 11.5))
                                ).matched == 0


def test_properties_keep_their_field_order(store):
    fields = (FieldDef("zeta", "text", "Z", "Z"), FieldDef("a", "integer", "A", "A"),
              FieldDef("mid", "text", "M", "M"))
    store.create_layer("khac", "Lớp khác", "generic", geometry_type="Point", fields=fields)
    [fid] = store.add_features("khac", [(Point(106.8, 11.5), {"mid": "m", "a": 1, "zeta": "z"})])
    assert list(store.get_feature("khac", fid).properties) == ["zeta", "a", "mid"]
    [page_feature] = store.query_features("khac", FeatureQuery()).features
    assert list(page_feature.properties) == ["zeta", "a", "mid"]


def test_nul_characters_are_refused_by_feature_number(store):
    store.create_layer("diem", "Điểm", "generic", geometry_type="Point")
    with pytest.raises(InvalidFeature, match="Feature 2: .*NUL"):
        store.add_features("diem", [(Point(106.8, 11.5), {"a": "ok"}),
                                    (Point(106.8, 11.5), {"a": "bad\x00"})])
    assert store.count_features("diem") == 0


def test_concurrent_writers_get_ascending_ids_in_item_order(hotspots):
    results: list[list[int]] = []

    def write(n):
        results.append(hotspots.add_features(
            "hotspots", [(Point(106.85, 11.52), hotspot(name=f"{n}-{i}")) for i in range(50)]))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ids in results:
        assert ids == sorted(ids)
        names = [hotspots.get_feature("hotspots", i).properties["name"] for i in ids[:3]]
        assert len({n.split("-")[0] for n in names}) == 1


def test_bulk_import_of_100k_points_is_fast(store):
    store.create_layer("diem", "Điểm", "generic", geometry_type="Point")
    items = ((Point(106.0 + (i % 1000) / 1000, 11.0 + (i // 1000) / 1000), {"n": i})
             for i in range(100_000))
    started = time.perf_counter()
    ids = store.add_features("diem", items)
    elapsed = time.perf_counter() - started
    assert len(ids) == 100_000 and store.count_features("diem") == 100_000
    assert elapsed < 20, f"100k points took {elapsed:.1f} s"
    page = store.query_features("diem", FeatureQuery(bbox=(106.0, 11.0, 106.0095, 11.0095)))
    assert page.matched == 100  # a 10 x 10 corner of the grid
