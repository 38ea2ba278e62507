"""Large imports stream: a file of hundreds of thousands of points is read and stored in
chunks, in bounded memory, and a bad feature deep in it still leaves nothing stored."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from layers.ingest import read
from layers.ingest.read import CHUNK_ROWS
from layers.query import MAX_LIMIT, FeatureQuery
from tests import support
from tests.ingest_files import tm3, write_shapefile, zip_files
from tests.support import csrf_token, login, make_app

CITY = (106.755, 11.461, 106.933, 11.577)
# What the command line may add to its own start-up (app and libraries, about 170 MiB) to
# import 200 000 points. Reading the file whole took about 220 MiB more; streaming takes
# about 105 MiB, most of it the store's (SQLite's 64 MiB page cache, the list of new ids).
IMPORT_MIB = 170


def points_gpkg(path: Path, n: int, types: list[str] | None = None, empty: int = 0) -> Path:
    """``n`` seeded random points over the city, with a code (the key the import guesses),
    a name, a type and a count each; the first ``empty`` without a geometry."""
    rng = np.random.default_rng(9)
    frame = gpd.GeoDataFrame({
        "ma": [f"TG{i:06d}" for i in range(1, n + 1)],
        "ten": [f"Điểm thu gom số {i}" for i in range(1, n + 1)],
        "loai": types or ["bin_cluster"] * n,
        "so_luong": rng.integers(0, 500, n),
    }, geometry=shapely.points(rng.uniform(CITY[0], CITY[2], n),
                               rng.uniform(CITY[1], CITY[3], n)), crs=4326)
    frame.loc[:empty - 1, "geometry"] = None
    pyogrio.write_dataframe(frame, path, layer="diem", driver="GPKG")
    return path


def peak_mib(database: str, folder: Path, *args: str) -> tuple[int, subprocess.CompletedProcess]:
    """``gis-service ARGS`` in a fresh process, and its peak resident memory in MiB (asked
    of a parent that waits for nothing else, so no other child's peak can count)."""
    code = ("import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1:], "
            "capture_output=True, text=True); print(json.dumps([resource.getrusage("
            "resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode, r.stdout, r.stderr]))")
    cli = [sys.executable, "-c", "from gis_service.cli import main; main()", *args]
    env = {"GIS_DATABASE": database, "GIS_CLI_LANG": "en", "PATH": "/usr/bin:/bin",
           "GIS_RATELIMIT_DB": str(folder / "rl.sqlite"), "GIS_UPLOAD_DIR": str(folder / "up")}
    out = subprocess.run([sys.executable, "-c", code, *cli], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    kib, returncode, stdout, stderr = json.loads(out.stdout)
    return kib // 1024, subprocess.CompletedProcess(cli, returncode, stdout, stderr)


def test_a_large_import_streams_in_bounded_memory(tmp_path):
    source = points_gpkg(tmp_path / "diem.gpkg", 200_000)
    database = support.test_database(tmp_path / "c.sqlite")
    start, listed = peak_mib(database, tmp_path, "layers", "list")
    assert listed.returncode == 0, listed.stderr
    peak, imported = peak_mib(database, tmp_path, "layers", "import", str(source),
                              "--slug", "diem-lon", "--yes")
    assert imported.returncode == 0, imported.stderr
    assert "Published 200000 features to 'diem-lon'" in imported.stdout
    assert "Fields: ma (text), ten (text), loai (text), so_luong (integer)" in imported.stdout
    assert peak - start < IMPORT_MIB, f"{peak} MiB at the peak, {start} MiB at start"
    _, listed = peak_mib(database, tmp_path, "layers", "list")
    assert "diem-lon\tgeneric\t200000\t" in listed.stdout


def test_a_streamed_import_keeps_each_row_key(tmp_path):
    """The keys travel beside their rows chunk after chunk: re-importing the same file
    matches every row to the feature it made."""
    n = 3 * CHUNK_ROWS + 1
    source = points_gpkg(tmp_path / "diem.gpkg", n)
    app = make_app(tmp_path / "app.sqlite", TILE_URL="")
    cli = app.test_cli_runner()
    created = cli.invoke(args=["layers", "import", str(source), "--slug", "diem", "--yes"])
    assert created.exit_code == 0 and f"Published {n} features" in created.output, (
        created.output)
    again = cli.invoke(args=["layers", "import", str(source), "--replace", "diem"])
    assert f"0 added, 0 changed, {n} unchanged, 0 archived" in again.output, again.output


def test_a_first_chunk_without_geometries_is_counted_and_the_rest_imported(tmp_path):
    n, empty = 2 * CHUNK_ROWS + 1, CHUNK_ROWS + 5
    source = points_gpkg(tmp_path / "diem.gpkg", n, empty=empty)
    app = make_app(tmp_path / "app.sqlite", TILE_URL="")
    result = app.test_cli_runner().invoke(args=["layers", "import", str(source), "--yes"])
    assert result.exit_code == 0, result.output
    assert f"{empty} features without a geometry were left out" in result.output
    assert f"Published {n - empty} features" in result.output


def test_a_bad_feature_late_in_a_large_file_stores_nothing(tmp_path):
    """The last row's type is no collection-point type: it is read only chunks after the
    first, once the store's transaction has written the others; all of it is undone."""
    n = 3 * CHUNK_ROWS + 1
    source = points_gpkg(tmp_path / "diem.gpkg", n, ["bin_cluster"] * (n - 1) + ["thùng"])
    app = make_app(tmp_path / "app.sqlite", TILE_URL="")
    store = app.extensions["gis_store"]
    before = [(la.slug, la.data_version) for la in store.list_layers()]
    result = app.test_cli_runner().invoke(args=[
        "layers", "import", str(source), "--kind", "collection_point", "--map", "type=loai",
        "--slug", "diem-thu-gom", "--yes"])
    assert result.exit_code == 1 and f"Feature {n}" in result.output, result.output
    planner = login(app.test_client(), "planner")
    answer = planner.post("/api/layers/import", headers={
        "X-CSRFToken": csrf_token(planner, "/layers/")}, data={
        "file": (io.BytesIO(source.read_bytes()), "diem.gpkg"), "slug": "diem-thu-gom",
        "title": "Điểm thu gom", "kind": "collection_point", "map_name": "ten",
        "map_type": "loai", "confirm": "on"},
        content_type="multipart/form-data")
    assert answer.status_code == 400 and f"{n}" in answer.json["error"], answer.json
    assert [(la.slug, la.data_version) for la in store.list_layers()] == before
    assert store.count_features("collection-points") == 300  # the sample's, untouched


def test_chunks_read_like_the_whole_file(tmp_path, monkeypatch):
    """A VN-2000 shapefile of plots in Windows-1258 without a .cpg, with empty and
    self-crossing shapes spread over three chunks, previewed and published twice by the
    command line: read in chunks, and in one piece. Both say and store the same, feature
    for feature."""
    n = 2 * CHUNK_ROWS + 500
    rng = np.random.default_rng(4)
    x, y = tm3(106.80, 11.50)
    xs, ys = x + rng.uniform(0, 9000, n), y + rng.uniform(0, 9000, n)
    geoms = shapely.box(xs, ys, xs + 40, ys + 30)
    geoms[[7, CHUNK_ROWS + 3, n - 1]] = None
    for i in (11, 2 * CHUNK_ROWS + 9):  # bow-ties, repaired
        geoms[i] = shapely.Polygon([(xs[i], ys[i]), (xs[i] + 50, ys[i] + 50),
                                    (xs[i] + 50, ys[i]), (xs[i], ys[i] + 50)])
    frame = gpd.GeoDataFrame({
        "TEN": [f"Điểm tập kết rác đường Phú Riềng Đỏ số {i}" for i in range(n)],
        "NGAY": [f"{1 + i % 28:02d}/{1 + i % 12:02d}/2024" for i in range(n)],
        "SO_LUONG": [str(i % 97) for i in range(n)],
    }, geometry=geoms, crs=9212)
    source = zip_files(tmp_path / "diem.zip", write_shapefile(
        tmp_path / "src", "diem", frame, encoding="cp1258"))
    app = make_app(tmp_path / "app.sqlite", TILE_URL="")
    store = app.extensions["gis_store"]

    def imported(slug: str) -> tuple[str, list]:
        result = app.test_cli_runner().invoke(args=[
            "layers", "import", str(source), "--slug", slug, "--yes"])
        assert result.exit_code == 0, result.output
        stored, after = [], None
        while True:
            page = store.query_features(slug, FeatureQuery(limit=MAX_LIMIT, after=after))
            stored += [(f.properties, shapely.get_coordinates(f.geometry).round(7).tolist())
                       for f in page.features]
            if (after := page.next_after) is None:
                return result.output.replace(slug, "SLUG"), stored

    chunked = imported("theo-phan")
    monkeypatch.setattr(read, "CHUNK_ROWS", 10 * n)
    assert imported("mot-lan") == chunked
    assert "3 features without a geometry were left out" in chunked[0]
    assert "2 invalid geometries were repaired" in chunked[0]
    assert "Windows-1258" in chunked[0] and "ngay (date)" in chunked[0]
    assert len(chunked[1]) == n - 3 and chunked[1][0][0]["ten"] == frame["TEN"][0]
