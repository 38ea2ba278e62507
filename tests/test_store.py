"""The Store contract. Every store (the embedded SQLite one today) must pass these."""

import sqlite3
import threading
import unicodedata
from dataclasses import replace

import pytest
from shapely.geometry import Point, Polygon

from layers.errors import (
    FeatureNotFound,
    InvalidFeature,
    LayerExists,
    LayerNotFound,
    UserExists,
    VersionConflict,
)
from layers.kinds import FieldDef
from layers.query import FeatureQuery, parse_query
from layers.store import SQLiteStore


def hotspot(name="Điểm đổ rác", status="reported", day="2022-03-04", ward="25195"):
    return {"name": name, "category": "illegal_dumping", "severity": 2, "status": status,
            "reported_at": day, "ward": ward}


@pytest.fixture
def hotspots(store):
    store.create_layer("hotspots", "Điểm nóng", "hotspot")
    return store


def test_layer_has_slug_title_kind_geometry_type_public_style_and_fields(store):
    layer = store.create_layer("hotspots", " Điểm nóng ô nhiễm ", "hotspot", public=True,
                               style={"color": "#ff0000"})
    again = store.get_layer("hotspots")
    assert again == layer
    assert (layer.title, layer.kind, layer.geometry_type, layer.public) == (
        "Điểm nóng ô nhiễm", "hotspot", "Point", True)
    assert layer.style == {"color": "#ff0000"}
    assert [f.name for f in layer.fields][:3] == ["name", "category", "severity"]
    assert [la.slug for la in store.list_layers(public_only=True)] == ["hotspots"]


def test_generic_layer_keeps_declared_fields(store):
    fields = (FieldDef("ten", "text", "Tên", "Name"), FieldDef("so_ho", "integer", "Số hộ", "Hh"))
    store.create_layer("khac", "Lớp khác", "generic", geometry_type="Polygon", fields=fields)
    assert store.get_layer("khac").fields == fields
    square = Polygon([(106.8, 11.5), (106.81, 11.5), (106.81, 11.51), (106.8, 11.5)])
    [fid] = store.add_features("khac", [(square, {"ten": "Ô 1", "so_ho": "12"})])
    assert store.get_feature("khac", fid).properties == {"ten": "Ô 1", "so_ho": 12}


def test_layer_errors_are_typed(store):
    store.create_layer("wards", "Phường", "ward")
    with pytest.raises(LayerExists):
        store.create_layer("wards", "Again", "ward")
    with pytest.raises(InvalidFeature, match="slug"):
        store.create_layer("Bad Slug!", "x", "ward")
    with pytest.raises(InvalidFeature, match="kind"):
        store.create_layer("x", "x", "rivers")
    with pytest.raises(LayerNotFound):
        store.get_layer("nope")
    with pytest.raises(LayerNotFound):
        store.query_features("nope", FeatureQuery())
    store.delete_layer("wards")
    with pytest.raises(LayerNotFound):
        store.get_layer("wards")


def test_features_round_trip_with_timestamps_version_and_nfc(hotspots):
    nfd_name = unicodedata.normalize("NFD", "Mùi hôi cơ sở chế biến mủ")
    [fid] = hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot(name=nfd_name))])
    f = hotspots.get_feature("hotspots", fid)
    assert f.geometry.equals(Point(106.85, 11.52))
    assert f.properties["name"] == unicodedata.normalize("NFC", nfd_name)
    assert f.version == 1 and f.created_at and f.created_at == f.updated_at
    geojson = f.to_geojson()
    assert geojson["geometry"] == {"type": "Point", "coordinates": (106.85, 11.52)}
    assert geojson["id"] == fid and geojson["meta"]["version"] == 1
    with pytest.raises(FeatureNotFound):
        hotspots.get_feature("hotspots", fid + 1000)


def test_add_features_is_all_or_nothing(hotspots):
    good = (Point(106.85, 11.52), hotspot())
    with pytest.raises(InvalidFeature, match="Feature 3"):
        hotspots.add_features("hotspots", [good, good, (Point(106.8, 11.5), hotspot(status="?"))])
    assert hotspots.count_features("hotspots") == 0
    with pytest.raises(InvalidFeature, match="Polygon"):
        square = Polygon([(0, 0), (1, 0), (1, 1)])
        hotspots.add_features("hotspots", [good, (square, hotspot())])
    with pytest.raises(InvalidFeature, match="EPSG:4326"):
        hotspots.add_features("hotspots", [(Point(565000, 1274000), hotspot())])
    with pytest.raises(InvalidFeature, match="non-empty"):
        hotspots.add_features("hotspots", [(Point(), hotspot())])
    assert hotspots.count_features("hotspots") == 0
    assert hotspots.extent("hotspots") is None


def test_invalid_polygons_are_refused(store):
    store.create_layer("wards", "Phường", "ward")
    bowtie = Polygon([(106.8, 11.5), (106.9, 11.6), (106.9, 11.5), (106.8, 11.6)])
    with pytest.raises(InvalidFeature, match="invalid"):
        store.add_features("wards", [(bowtie, {"code": "1", "name": "x", "type": "xa"})])


def test_bbox_filters_and_paging(hotspots):
    items = [
        (Point(106.80 + i * 0.01, 11.50), hotspot(status="resolved" if i % 2 else "reported",
                                                   day=f"202{i % 5}-06-01", ward=str(i % 3)))
        for i in range(10)
    ]
    ids = hotspots.add_features("hotspots", items)
    fields = hotspots.get_layer("hotspots").fields

    def matched(**params):
        query = parse_query({k: [v] for k, v in params.items()}, fields)
        return [f.id for f in hotspots.query_features("hotspots", query).features]

    assert matched() == ids
    assert sorted(matched(bbox="106.825,11.4,106.855,11.6")) == ids[3:6]
    assert matched(status="resolved") == ids[1::2]
    assert matched(status="resolved", ward="1") == [ids[1], ids[7]]
    assert matched(reported_from="2022-01-01", reported_to="2023-12-31") == [
        ids[i] for i in range(10) if i % 5 in (2, 3)]
    first = hotspots.query_features("hotspots", parse_query({"limit": ["4"]}, fields))
    assert [f.id for f in first.features] == ids[:4] and first.matched == 10
    second = hotspots.query_features("hotspots", replace(first.query, after=first.next_after))
    third = hotspots.query_features("hotspots", replace(first.query, after=second.next_after))
    assert [f.id for f in second.features + third.features] == ids[4:]
    assert third.matched == 10 and third.next_after is None
    assert hotspots.extent("hotspots") == pytest.approx((106.80, 11.50, 106.89, 11.50))


def test_filter_values_are_bound_not_spliced(hotspots):
    hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot(ward="x' OR '1'='1"))])
    fields = hotspots.get_layer("hotspots").fields
    odd = parse_query({"ward": ["' OR '1'='1"]}, fields)
    assert hotspots.query_features("hotspots", odd).matched == 0
    exact = parse_query({"ward": ["x' OR '1'='1"]}, fields)
    assert hotspots.query_features("hotspots", exact).matched == 1


def test_update_needs_the_current_version(hotspots):
    [fid] = hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot())])
    updated = hotspots.update_feature("hotspots", fid, expected_version=1,
                                      properties=hotspot(status="verified"),
                                      geometry=Point(106.86, 11.53))
    assert updated.version == 2 and updated.properties["status"] == "verified"
    fields = hotspots.get_layer("hotspots").fields
    moved = parse_query({"bbox": ["106.855,11.525,106.865,11.535"]}, fields)
    assert [f.id for f in hotspots.query_features("hotspots", moved).features] == [fid]
    with pytest.raises(VersionConflict) as conflict:
        hotspots.update_feature("hotspots", fid, expected_version=1,
                                properties=hotspot(status="dismissed"))
    assert conflict.value.current["properties"]["status"] == "verified"
    assert hotspots.get_feature("hotspots", fid).properties["status"] == "verified"
    with pytest.raises(InvalidFeature):
        hotspots.update_feature("hotspots", fid, expected_version=2,
                                properties=hotspot(status="nonsense"))
    assert hotspots.get_feature("hotspots", fid).version == 2


def test_delete_layer_removes_features_and_index_entries(hotspots):
    hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot())])
    hotspots.delete_layer("hotspots")
    hotspots.create_layer("hotspots", "Lại", "hotspot")
    assert hotspots.count_features("hotspots") == 0
    assert hotspots.extent("hotspots") is None


def test_concurrent_writers_lose_nothing(hotspots):
    def write(n):
        hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot(name=f"{n}-{i}"))
                                           for i in range(20)])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hotspots.count_features("hotspots") == 80


def test_accounts(store):
    user = store.create_user("lan", "hash", "inspector")
    assert store.get_user("lan") == user
    assert store.get_user("nobody") is None
    with pytest.raises(UserExists):
        store.create_user("lan", "hash", "admin")
    with pytest.raises(InvalidFeature, match="Role"):
        store.create_user("minh", "hash", "superuser")
    assert [u.username for u in store.list_users()] == ["lan"]


def test_data_survives_reopening(tmp_path):
    first = SQLiteStore(tmp_path / "x.sqlite")
    first.create_layer("hotspots", "Điểm nóng", "hotspot")
    first.add_features("hotspots", [(Point(106.85, 11.52), hotspot())])
    assert SQLiteStore(tmp_path / "x.sqlite").count_features("hotspots") == 1


def test_create_layer_with_features_is_atomic_even_when_the_source_fails(store):
    def features_then_crash():
        yield Point(106.85, 11.52), hotspot()
        yield Point(106.86, 11.52), hotspot()
        raise OSError("disk read failed half-way through the file")

    with pytest.raises(OSError):
        store.create_layer("imported", "Nhập", "hotspot", features=features_then_crash())
    with pytest.raises(LayerNotFound):
        store.get_layer("imported")
    with pytest.raises(InvalidFeature, match="Feature 2"):
        store.create_layer("imported", "Nhập", "hotspot", features=[
            (Point(106.85, 11.52), hotspot()), (Point(106.85, 11.52), hotspot(status="?"))])
    assert store.list_layers() == []
    layer = store.create_layer("imported", "Nhập", "hotspot",
                               features=[(Point(106.85, 11.52), hotspot())], note="first import")
    assert store.count_features("imported") == 1 and layer.data_version == 1


def test_replacing_data_keeps_the_previous_version_restorable(hotspots):
    hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot(name="cũ"))])
    v2 = hotspots.replace_features("hotspots", [(Point(106.87, 11.53), hotspot(name="mới 1")),
                                                (Point(106.88, 11.53), hotspot(name="mới 2"))],
                                   note="re-upload")
    assert v2 == 2 and hotspots.get_layer("hotspots").data_version == 2
    names = [f.properties["name"] for f in hotspots.query_features("hotspots",
                                                                   FeatureQuery()).features]
    assert names == ["mới 1", "mới 2"]
    near_old = FeatureQuery(bbox=(106.849, 11.519, 106.851, 11.521))
    assert hotspots.query_features("hotspots", near_old).matched == 0  # index follows the swap
    versions = hotspots.list_versions("hotspots")
    assert [(v.data_version, v.feature_count, v.current) for v in versions] == [
        (2, 2, True), (1, 1, False)]
    v3 = hotspots.restore_version("hotspots", 1)
    restored = hotspots.query_features("hotspots", FeatureQuery()).features
    assert v3 == 3 and [f.properties["name"] for f in restored] == ["cũ"]
    assert hotspots.query_features("hotspots", near_old).matched == 1
    assert hotspots.list_versions("hotspots")[0].note == "restored from version 1"
    hotspots.restore_version("hotspots", 2)
    assert hotspots.count_features("hotspots") == 2
    with pytest.raises(InvalidFeature, match="no version 9"):
        hotspots.restore_version("hotspots", 9)


def test_a_failed_replacement_leaves_the_current_data(hotspots):
    hotspots.add_features("hotspots", [(Point(106.85, 11.52), hotspot())])
    with pytest.raises(InvalidFeature):
        bad = {**hotspot(), "severity": 8}
        hotspots.replace_features("hotspots", [(Point(106.85, 11.52), bad)])
    assert hotspots.count_features("hotspots") == 1
    assert hotspots.get_layer("hotspots").data_version == 1
    assert len(hotspots.list_versions("hotspots")) == 1


def test_a_store_written_by_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    SQLiteStore(path)
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        SQLiteStore(path)


def test_batched_writes_name_the_right_feature_and_stay_atomic(hotspots, monkeypatch):
    monkeypatch.setattr(SQLiteStore, "BATCH", 3)
    items = [(Point(106.85 + i / 1000, 11.52), hotspot(name=f"số {i}")) for i in range(8)]
    items[6] = (Point(106.9, 11.5), hotspot(status="closed"))
    with pytest.raises(InvalidFeature, match="Feature 7"):
        hotspots.add_features("hotspots", items)
    assert hotspots.count_features("hotspots") == 0
    del items[6]
    ids = hotspots.add_features("hotspots", items)
    assert len(ids) == len(set(ids)) == 7
    names = [hotspots.get_feature("hotspots", i).properties["name"] for i in ids]
    assert names == [p["name"] for _, p in items]
    assert hotspots.query_features("hotspots", FeatureQuery(bbox=(106.853, 11.5, 106.8545, 11.6))
                                   ).matched == 2


# -- re-importing a layer: ids, keys, staff changes, archive -----------------------------
def keyed_rows(keys, severity=None):
    """Hotspot rows as a file brings them, each at its own place, named after its key."""
    return [(Point(106.85 + ord(k) / 10000, 11.52),
             {**hotspot(name=f"Điểm {k}"), **({"severity": severity[k]} if severity and
                                                k in severity else {})}) for k in keys]


def ids_by_name(store, slug="hs"):
    return {f.properties["name"][-1]: f.id for f in store.query_features(
        slug, FeatureQuery()).features}


@pytest.fixture
def keyed(store):
    store.create_layer("hs", "Điểm nóng", "hotspot", features=keyed_rows("ABC"), keys="ABC")
    return store


def test_feature_ids_are_never_handed_out_again(hotspots):
    first = hotspots.add_features("hotspots", keyed_rows("ABC"))
    hotspots.replace_features("hotspots", keyed_rows("ABC"))  # no key: all new features
    again = sorted(ids_by_name(hotspots, "hotspots").values())
    assert min(again) > max(first)
    hotspots.delete_layer("hotspots")
    hotspots.create_layer("hotspots", "Điểm nóng", "hotspot", features=keyed_rows("A"))
    assert min(ids_by_name(hotspots, "hotspots").values()) > max(again)


def _staff_work(store, feature_id):
    """An inspector visits a hotspot and verifies it, as the pages do."""
    from layers.workflow import move_status

    store.add_inspection("hs", feature_id, inspected_on="2024-03-02", inspector="lan",
                         finding="Rác tràn ra đường")
    move_status(store, "hs", feature_id, "verified", note="Đã kiểm tra tại chỗ", actor="lan",
                expected_version=1)


@pytest.mark.parametrize("order", ["ABC", "CBA"])
def test_reimport_keeps_ids_history_and_staff_status_by_key(keyed, order):
    before = ids_by_name(keyed)
    _staff_work(keyed, before["B"])
    plan = keyed.plan_replace("hs", keyed_rows(order), keys=list(order))
    assert plan.counts() == {"added": 0, "changed": 0, "unchanged": 3, "archived": 0,
                             "conflicts": 1, "file_wins": 0}
    [conflict] = plan.conflicts
    assert (conflict.feature_id, conflict.field, conflict.staff, conflict.file) == (
        before["B"], "status", "verified", "reported")
    assert keyed.get_layer("hs").data_version == 1  # a plan changes nothing
    keyed.replace_features("hs", keyed_rows(order), keys=list(order))
    assert ids_by_name(keyed) == before
    b = keyed.get_feature("hs", before["B"])
    assert b.properties["status"] == "verified"  # the staff's move stays
    assert [i.finding for i in keyed.list_inspections("hs", before["B"])] == ["Rác tràn ra đường"]
    assert keyed.list_inspections("hs", before["A"]) == []
    notes = [e.note for e in keyed.list_audit(feature_id=before["B"])[0]
             if e.action == "feature.status"]
    assert notes == ["Đã kiểm tra tại chỗ"]


def test_rows_added_and_removed_become_new_and_archived_features(keyed):
    before = ids_by_name(keyed)
    keyed.add_inspection("hs", before["C"], inspected_on="2024-03-02", inspector="lan",
                         finding="Đã dọn một phần")
    rows = keyed_rows("DBA", severity={"A": 3})
    plan = keyed.plan_replace("hs", rows, keys=list("DBA"))
    assert plan.counts() == {"added": 1, "changed": 1, "unchanged": 1, "archived": 1,
                             "conflicts": 0, "file_wins": 0}
    assert [e.key for e in plan.examples()["archived"]] == ["C"]
    assert plan.examples()["changed"][0].fields == ("severity",)
    keyed.replace_features("hs", rows, keys=list("DBA"))
    after = ids_by_name(keyed)
    assert (after["A"], after["B"]) == (before["A"], before["B"])
    assert after["D"] > max(before.values()) and "C" not in after
    assert keyed.get_feature("hs", before["A"]).properties["severity"] == 3
    assert keyed.count_features("hs") == 3
    assert keyed.query_features("hs", FeatureQuery(bbox=(106.85665, 11.519, 106.85675, 11.521))
                                ).matched == 0  # C is off maps and queries
    with pytest.raises(FeatureNotFound):
        keyed.get_feature("hs", before["C"])
    archived = keyed.get_feature("hs", before["C"], archived=True)
    assert archived.archived_at and archived.to_geojson()["meta"]["archived_at"]
    assert [i.finding for i in keyed.list_inspections("hs", before["C"])] == ["Đã dọn một phần"]
    with pytest.raises(FeatureNotFound):  # an archived feature takes no edits
        keyed.update_feature("hs", before["C"], expected_version=1,
                             properties=archived.properties)
    # The file brings C back: it returns with its id and history.
    keyed.replace_features("hs", keyed_rows("ABCD"), keys=list("ABCD"))
    assert ids_by_name(keyed) == {**before, "D": after["D"]}


def test_the_planner_can_let_the_file_win_a_conflict(keyed):
    from layers.store.base import FileWins

    before = ids_by_name(keyed)
    _staff_work(keyed, before["B"])
    wins = FileWins(frozenset({(before["B"], "status")}))
    assert keyed.plan_replace("hs", keyed_rows("ABC"), keys=list("ABC"),
                              file_wins=wins).counts()["file_wins"] == 1
    keyed.replace_features("hs", keyed_rows("ABC"), keys=list("ABC"), file_wins=wins)
    assert keyed.get_feature("hs", before["B"]).properties["status"] == "reported"
    # The file's value is now the baseline: importing it again is no conflict.
    assert keyed.plan_replace("hs", keyed_rows("ABC"), keys=list("ABC")).conflicts == []


def test_restore_matches_by_id_and_brings_archived_features_back(keyed):
    before = ids_by_name(keyed)
    keyed.replace_features("hs", keyed_rows("AD"), keys=list("AD"))
    added = ids_by_name(keyed)["D"]
    plan = keyed.plan_restore("hs", 1)
    assert plan.matched_by == "id" and plan.counts()["archived"] == 1
    assert plan.counts()["changed"] == 2  # B and C come back
    keyed.restore_version("hs", 1, expected_version=2)
    assert ids_by_name(keyed) == before
    assert keyed.get_feature("hs", added, archived=True).archived_at


def test_a_replace_reviewed_on_an_old_version_or_with_ambiguous_keys_is_refused(keyed):
    keyed.replace_features("hs", keyed_rows("ABC"), keys=list("ABC"))
    with pytest.raises(VersionConflict, match="review"):
        keyed.replace_features("hs", keyed_rows("ABC"), keys=list("ABC"), expected_version=1)
    with pytest.raises(VersionConflict):
        keyed.restore_version("hs", 1, expected_version=1)
    with pytest.raises(InvalidFeature, match="key 'A'"):
        keyed.plan_replace("hs", keyed_rows("AB"), keys=["A", "A"])
    assert keyed.get_layer("hs").data_version == 2
