"""Administrators browse, filter and export the audit log."""

from __future__ import annotations

import csv
import io

from shapely.geometry import Point

from tests.support import login


def add_hotspot(store, name, actor):
    return store.add_features("hotspots", [(Point(106.85, 11.52), {
        "name": name, "category": "air", "severity": 1, "status": "reported",
        "reported_at": "2024-01-01"})], actor=actor)[0]


def test_only_admins_see_the_audit_log(client):
    assert client.get("/admin/audit").status_code == 302
    login(client, "planner")
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit.csv").status_code == 403


def test_audit_log_filters_and_csv(app, client):
    store = app.extensions["gis_store"]
    add_hotspot(store, "Khói nhà máy", "lan")
    add_hotspot(store, "=HYPERLINK(\"http://evil\")", "minh")
    login(client, "admin")
    page = client.get("/admin/audit?user=lan").get_data(as_text=True)
    assert "Khói nhà máy" not in page or "lan" in page
    assert "feature.create" in page and ">minh<" not in page
    assert client.get("/admin/audit?layer=wards").get_data(as_text=True).count(
        "feature.create") == 0
    assert client.get("/admin/audit?from=2999-01-01").get_data(as_text=True).count(
        "<tr>") == 1  # the header row only
    assert client.get("/admin/audit?from=01/01/2024").status_code == 400
    exported = client.get("/admin/audit.csv?layer=hotspots")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:4] == ["id", "at", "user", "action"]
    users = {r[2] for r in rows[1:]}
    assert {"lan", "minh"} <= users
    assert all(not cell.startswith("=") for r in rows for cell in r)
    minh_row = next(r for r in rows if r[2] == "minh")
    assert "HYPERLINK" in minh_row[8] and minh_row[3] == "feature.create"
