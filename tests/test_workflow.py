"""The hotspot workflow, inspections and the audit log, on the store."""

from __future__ import annotations

import datetime as dt

import pytest
from shapely.geometry import Point

from layers.errors import InvalidFeature, VersionConflict
from layers.store import SQLiteStore
from layers.workflow import TRANSITIONS, move_status, next_statuses, timeline


@pytest.fixture
def hot(store: SQLiteStore) -> tuple[SQLiteStore, int]:
    store.create_layer("hotspots", "Điểm nóng", "hotspot")
    [fid] = store.add_features("hotspots", [(Point(106.85, 11.52), {
        "name": "Bãi rác chợ", "category": "illegal_dumping", "severity": 2,
        "status": "reported", "reported_at": "2024-03-01", "ward": "25195"})], actor="lan")
    return store, fid


def test_allowed_moves():
    assert next_statuses("reported") == ("verified", "dismissed")
    assert next_statuses("verified") == ("in_progress", "dismissed")
    assert next_statuses("in_progress") == ("resolved",)
    assert next_statuses("resolved") == ("in_progress",)
    assert next_statuses("dismissed") == ()
    assert set(TRANSITIONS) == {"reported", "verified", "in_progress", "resolved", "dismissed"}


def test_a_hotspot_is_followed_until_resolved_and_can_be_reopened(hot):
    store, fid = hot
    f = move_status(store, "hotspots", fid, "verified", note="Đã kiểm tra thực địa",
                    actor="lan", expected_version=1)
    f = move_status(store, "hotspots", fid, "in_progress", note="Giao UBND phường",
                    actor="lan", expected_version=f.version)
    f = move_status(store, "hotspots", fid, "resolved", note="Đã dọn", actor="minh",
                    expected_version=f.version, on=dt.date(2024, 4, 2))
    assert f.properties["status"] == "resolved" and f.properties["resolved_at"] == "2024-04-02"
    f = move_status(store, "hotspots", fid, "in_progress", note="Tái phát", actor="minh",
                    expected_version=f.version)
    assert "resolved_at" not in f.properties and f.version == 5


@pytest.mark.parametrize(("to", "note", "message"), [
    ("resolved", "x", "cannot become resolved"),
    ("verified", "   ", "needs a note"),
    ("closed", "x", "cannot become closed"),
])
def test_disallowed_moves_change_nothing(hot, to, note, message):
    store, fid = hot
    with pytest.raises(InvalidFeature, match=message):
        move_status(store, "hotspots", fid, to, note=note, actor="lan", expected_version=1)
    assert store.get_feature("hotspots", fid).version == 1


def test_two_inspectors_moving_the_same_hotspot(hot):
    store, fid = hot
    move_status(store, "hotspots", fid, "verified", note="A xác minh", actor="an",
                expected_version=1)
    with pytest.raises(VersionConflict) as conflict:
        move_status(store, "hotspots", fid, "dismissed", note="B bác bỏ", actor="binh",
                    expected_version=1)
    assert conflict.value.current["properties"]["status"] == "verified"
    assert store.get_feature("hotspots", fid).properties["status"] == "verified"


def test_every_change_is_in_the_audit_log_with_before_and_after(hot):
    store, fid = hot
    move_status(store, "hotspots", fid, "verified", note="Đã xác minh", actor="lan",
                expected_version=1)
    entries, total = store.list_audit(layer="hotspots", feature_id=fid)
    assert total == 2 and [e.action for e in entries] == ["feature.status", "feature.create"]
    status = entries[0]
    assert status.actor == "lan" and status.note == "Đã xác minh"
    assert status.before["properties"]["status"] == "reported"
    assert status.after["properties"]["status"] == "verified"
    everything, _ = store.list_audit()
    assert {e.action for e in everything} >= {"layer.create", "feature.create", "feature.status"}
    assert store.list_audit(actor="nobody")[1] == 0
    assert store.list_audit(since="2999-01-01")[1] == 0


def test_bulk_and_layer_operations_are_audited(store):
    store.create_layer("diem", "Điểm", "generic", geometry_type="Point", actor="planner1",
                       features=[(Point(106.8, 11.5), {})] * 3, note="nhập tệp")
    store.replace_features("diem", [(Point(106.8, 11.5), {})], actor="planner1")
    store.restore_version("diem", 1, actor="admin1")
    store.delete_layer("diem", actor="admin1")
    everything, _ = store.list_audit(layer="diem")
    entries = [e for e in everything if e.feature_id is None]  # each feature's are its own
    assert [(e.action, e.actor) for e in entries] == [
        ("layer.delete", "admin1"), ("layer.replace", "admin1"), ("layer.replace", "planner1"),
        ("layer.create", "planner1")]
    assert {e.action for e in everything if e.feature_id} == {"feature.archive",
                                                                "feature.restore"}
    assert entries[3].after["features"] == 3 and entries[3].note == "nhập tệp"
    assert entries[1].note == "restored from version 1"


def test_inspections_with_photos_and_the_timeline(hot):
    store, fid = hot
    photo = ("image/jpeg", 4, 3, b"\xff\xd8jpegdata")
    iid = store.add_inspection("hotspots", fid, inspected_on="2024-03-05", inspector="lan",
                               finding="Rác tồn đọng 5 m³", photos=(photo, photo), actor="lan")
    [inspection] = store.list_inspections("hotspots", fid)
    assert inspection.id == iid and len(inspection.photo_ids) == 2
    stored = store.get_photo(inspection.photo_ids[0])
    assert (stored.mime, stored.data, stored.feature_id) == ("image/jpeg", b"\xff\xd8jpegdata",
                                                             fid)
    move_status(store, "hotspots", fid, "verified", note="Xác minh", actor="lan",
                expected_version=1)
    kinds = [t.kind for t in timeline(store, "hotspots", fid)]
    assert sorted(kinds) == ["created", "inspection", "status"]
    with pytest.raises(InvalidFeature, match="finding"):
        store.add_inspection("hotspots", fid, inspected_on="2024-03-05", inspector="lan",
                             finding=" ")
    with pytest.raises(InvalidFeature, match="YYYY-MM-DD"):
        store.add_inspection("hotspots", fid, inspected_on="05/03/2024", inspector="lan",
                             finding="x")
    assert len(store.list_inspections("hotspots", fid)) == 1


def test_timeline_of_an_imported_hotspot_starts_when_it_arrived(store):
    store.create_layer("hotspots", "Điểm nóng", "hotspot")
    props = {"name": "Nhập", "category": "water", "severity": 1, "status": "verified",
             "reported_at": "2023-01-01"}
    ids = store.add_features("hotspots", [(Point(106.85, 11.52), props)] * 2)
    [entry] = timeline(store, "hotspots", ids[0])
    assert entry.kind == "created" and entry.summary == {"status": "verified"}
    assert entry.at == store.get_feature("hotspots", ids[0]).created_at


def test_a_citizen_report_keeps_its_contact_apart(hot):
    store, fid = hot
    props = {"name": "Phản ánh", "category": "odour", "severity": 1, "status": "reported",
             "reported_at": "2024-06-01", "source": "citizen"}
    rid = store.create_report("hotspots", Point(106.86, 11.53), props, code="PA-TEST2345",
                              contact="0912 000 111")
    assert store.find_report("PA-TEST2345") == ("hotspots", rid)
    assert store.report_contact("hotspots", rid) == ("PA-TEST2345", "0912 000 111")
    assert store.report_contact("hotspots", fid) is None
    assert "0912" not in str(store.get_feature("hotspots", rid).properties)
    assert store.list_inspections("hotspots", rid) == []  # a report is no inspection
