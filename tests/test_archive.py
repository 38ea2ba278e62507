"""Uploads are hostile: every archive trick is refused with a clear message, nothing is ever
extracted, and genuine agency files list datasets that pyogrio can really read."""

from __future__ import annotations

import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import LineString, Point

from layers.errors import InvalidUpload
from layers.ingest.archive import (
    Dataset,
    UploadLimits,
    open_upload,
    read_member_bytes,
    sniff_format,
)

EVIL = "dx_archive_evil.txt"  # what slip members try to write outside the upload folder
ALL_SIDECARS = (".prj", ".cpg", ".dbf", ".shx")


@pytest.fixture(scope="module")
def shp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The files of a tiny real shapefile (two roads, EPSG:4326), by extension."""
    folder = tmp_path_factory.mktemp("shp")
    roads = gpd.GeoDataFrame(
        {"name": ["QL14", "Phú Riềng"]},
        geometry=[LineString([(106.88, 11.53), (106.90, 11.54)]),
                  LineString([(106.90, 11.54), (106.92, 11.56)])],
        crs="EPSG:4326",
    )
    pyogrio.write_dataframe(roads, folder / "roads.shp", encoding="UTF-8")
    return {p.suffix: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": ["Trạm 1", "Trạm 2"]},
                            geometry=[Point(106.9, 11.5), Point(106.91, 11.52)], crs="EPSG:4326")


def parts(files: dict[str, bytes], prefix: str = "roads", upper: bool = False,
          skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Shapefile members named ``prefix`` + extension (upper-cased as Windows tools do)."""
    return {prefix + (ext.upper() if upper else ext): data
            for ext, data in files.items() if ext not in skip}


def make_zip(path: Path, members: dict[str, bytes],
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip holding exactly these member names (ZipInfo keeps them unnormalised)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def patch_headers(path: Path, local: int, central: int, change: Callable[[int], int],
                  size: str = "<H") -> None:
    """Rewrite one field of every local and central header (zipfile cannot write lies)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offsets = [i.header_offset + local for i in zf.infolist()]
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        offsets.append(pos + central)
        pos = data.find(b"PK\x01\x02", pos + 4)
    width = struct.calcsize(size)
    for off in offsets:
        (value,) = struct.unpack(size, data[off:off + width])
        data[off:off + width] = struct.pack(size, change(value))
    path.write_bytes(bytes(data))


def add_overlapping_entry(path: Path) -> None:
    """Duplicate the (single) central directory entry: two files, same compressed bytes."""
    data = path.read_bytes()
    end = data.rfind(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack("<HII", data[end + 10:end + 20])
    entry = data[cd_offset:cd_offset + cd_size]
    record = bytearray(data[end:])
    record[8:20] = struct.pack("<HHII", count + 1, count + 1, 2 * cd_size, cd_offset)
    path.write_bytes(data[:cd_offset] + entry + entry.replace(b"a.txt", b"b.txt") + record)


def snapshot(tmp_path: Path) -> tuple[list[str], list[str]]:
    """Everything under tmp_path, and its siblings: any extraction would show up here."""
    return (sorted(str(p) for p in tmp_path.rglob("*")), sorted(os.listdir(tmp_path.parent)))


def refused(path: Path, name: str | None = None, limits: UploadLimits | None = None) -> str:
    with pytest.raises(InvalidUpload) as caught:
        open_upload(path, name or path.name, limits or UploadLimits())
    return caught.value.message


# ---------------------------------------------------------------- genuine uploads


def test_one_shapefile_zip_lists_a_readable_vsizip_dataset(tmp_path: Path, shp: dict) -> None:
    upload = make_zip(tmp_path / "roads.zip", parts(shp))
    before = snapshot(tmp_path)
    datasets = open_upload(upload, "roads.zip")
    assert datasets == [Dataset(f"/vsizip/{upload}/roads.shp", "roads.shp", "shapefile",
                                ALL_SIDECARS)]
    frame = pyogrio.read_dataframe(datasets[0].path)
    assert list(frame["name"]) == ["QL14", "Phú Riềng"]
    assert frame.crs.to_epsg() == 4326
    assert snapshot(tmp_path) == before


def test_several_shapefiles_in_subfolders_with_uppercase_extensions(tmp_path: Path,
                                                                    shp: dict) -> None:
    members = {"Export/": b"", "Export/GiaoThong/": b"", "Export/readme.txt": "Sở TN&MT".encode(),
               **parts(shp, "Export/GiaoThong/ROADS", upper=True),
               **parts(shp, "Export/ThuyVan/rivers", skip=(".prj", ".cpg")),
               "__MACOSX/Export/ThuyVan/._rivers.shp": b"\x00\x05\x16\x07junk",
               "Export/ThuyVan/._rivers.dbf": b"\x00\x05\x16\x07junk",
               "Export/meta.json": b'{"author": "agency"}'}
    upload = make_zip(tmp_path / "DongXoai.zip", members)
    datasets = open_upload(upload, "DongXoai.zip")
    assert [(d.name, d.format, d.sidecars) for d in datasets] == [
        ("Export/GiaoThong/ROADS.SHP", "shapefile", ALL_SIDECARS),
        ("Export/ThuyVan/rivers.shp", "shapefile", (".dbf", ".shx")),
    ]
    for dataset in datasets:
        assert dataset.path == f"/vsizip/{upload}/{dataset.name}"
        assert pyogrio.read_info(dataset.path)["features"] == 2
    assert pyogrio.read_info(datasets[0].path)["crs"] == "EPSG:4326"


def test_windows_backslashes_and_dot_segments_become_gdal_paths(tmp_path: Path,
                                                                shp: dict) -> None:
    members = {**parts(shp, "GIS\\roads"), **parts(shp, "./data/lines")}
    upload = make_zip(tmp_path / "win.zip", members)
    datasets = open_upload(upload, "win.zip")
    assert [d.name for d in datasets] == ["GIS/roads.shp", "data/lines.shp"]
    for dataset in datasets:
        assert len(pyogrio.read_dataframe(dataset.path)) == 2


def test_utf8_and_unflagged_utf8_member_names(tmp_path: Path, shp: dict) -> None:
    flagged = make_zip(tmp_path / "flagged.zip", parts(shp, "Đường giao thông/đường"))
    [dataset] = open_upload(flagged, "flagged.zip")
    assert dataset.name == "Đường giao thông/đường.shp"
    assert len(pyogrio.read_dataframe(dataset.path)) == 2
    # Old Windows tools store UTF-8 bytes without the UTF-8 flag: zipfile and GDAL both
    # decode them as CP437, so the path works and the human name is repaired.
    placeholder = "X" * len("đường".encode())
    unflagged = make_zip(tmp_path / "unflagged.zip", parts(shp, placeholder))
    unflagged.write_bytes(unflagged.read_bytes().replace(placeholder.encode(),
                                                         "đường".encode()))
    [dataset] = open_upload(unflagged, "unflagged.zip")
    assert dataset.name == "đường.shp"
    assert len(pyogrio.read_dataframe(dataset.path)) == 2


def test_upload_stored_without_zip_extension_uses_braces(tmp_path: Path, shp: dict) -> None:
    upload = make_zip(tmp_path / "upload-42.bin", parts(shp))
    [dataset] = open_upload(upload, "roads.zip")
    assert dataset.path == f"/vsizip/{{{upload}}}/roads.shp"
    assert len(pyogrio.read_dataframe(dataset.path)) == 2
    assert read_member_bytes(dataset, ".cpg") == b"UTF-8"


def test_kmz_lists_its_kml(tmp_path: Path, points: gpd.GeoDataFrame) -> None:
    pyogrio.write_dataframe(points, tmp_path / "doc.kml", driver="KML")
    upload = make_zip(tmp_path / "tram.kmz", {"doc.kml": (tmp_path / "doc.kml").read_bytes(),
                                              "files/icon.png": b"\x89PNG\r\n\x1a\n"})
    assert sniff_format(upload) == "zip"
    [dataset] = open_upload(upload, "tram.kmz")
    assert (dataset.path, dataset.format) == (f"/vsizip/{upload}/doc.kml", "kml")
    assert list(pyogrio.read_dataframe(dataset.path)["Name"]) == ["Trạm 1", "Trạm 2"]


@pytest.mark.parametrize(("name", "driver", "fmt"), [
    ("tram.gpkg", "GPKG", "gpkg"), ("tram.geojson", "GeoJSON", "geojson"),
    ("tram.json", "GeoJSON", "geojson"), ("tram.kml", "KML", "kml"),
])
def test_plain_files_are_sniffed_and_listed(tmp_path: Path, points: gpd.GeoDataFrame,
                                            name: str, driver: str, fmt: str) -> None:
    path = tmp_path / name
    pyogrio.write_dataframe(points, path, driver=driver)
    assert sniff_format(path) == fmt
    assert open_upload(path, name) == [Dataset(str(path), name, fmt, ())]
    assert pyogrio.read_info(str(path))["features"] == 2


def test_csv_saved_under_a_temporary_name_is_still_readable(tmp_path: Path) -> None:
    path = tmp_path / "upload-7"
    path.write_text("\ufeffname,lon,lat\nTrạm 1,106.9,11.5\nTrạm 2,106.91,11.52\n")
    assert sniff_format(path, "tram.csv") == sniff_format(path) == "csv"
    [dataset] = open_upload(path, "tram.csv")
    assert dataset == Dataset(f"CSV:{path}", "tram.csv", "csv", ())
    assert pyogrio.read_info(dataset.path)["features"] == 2


def test_truncated_plain_files_are_sniffed_and_left_to_the_reader(
        tmp_path: Path, points: gpd.GeoDataFrame) -> None:
    for name, driver in (("cut.geojson", "GeoJSON"), ("cut.gpkg", "GPKG")):
        whole = tmp_path / f"whole-{name}"
        pyogrio.write_dataframe(points, whole, driver=driver)
        data = whole.read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        [dataset] = open_upload(tmp_path / name, name)
        assert dataset.format == Path(name).suffix[1:]
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.read_dataframe(tmp_path / "cut.geojson")


def test_read_member_bytes_reads_small_sidecars_only(tmp_path: Path, shp: dict) -> None:
    [lower] = open_upload(make_zip(tmp_path / "a.zip", parts(shp)), "a.zip")
    [upper] = open_upload(make_zip(tmp_path / "b.zip", parts(shp, "X/ROADS", upper=True)),
                          "b.zip")
    for dataset in (lower, upper):
        assert read_member_bytes(dataset, ".prj").startswith(b"GEOGCS[")
        assert read_member_bytes(dataset, ".cpg") == b"UTF-8"
        assert read_member_bytes(dataset, ".qix") is None
        assert read_member_bytes(dataset, ".prj", limit=6) == b"GEOGCS"
    for ext, data in shp.items():  # an unzipped shapefile, e.g. made by an admin script
        (tmp_path / f"roads{ext.upper() if ext == '.prj' else ext}").write_bytes(data)
    beside = Dataset(str(tmp_path / "roads.shp"), "roads.shp", "shapefile", ALL_SIDECARS)
    assert read_member_bytes(beside, ".prj") == shp[".prj"]
    assert read_member_bytes(beside, ".cpg", limit=2) == b"UT"
    assert read_member_bytes(beside, ".qix") is None


# ---------------------------------------------------------------- refused plain files


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("roads.zip", b"name,lon,lat\nA,106.9,11.5\n",
     "roads.zip has the wrong extension: it is named .zip but it is really a CSV text file, "
     "not a zip archive"),
    ("roads.geojson", b"PK\x03\x04" + b"\x00" * 40,
     "it is named .geojson but it is really a zip archive, not a GeoJSON file"),
    ("roads.gpkg", b"just some text", "really a CSV text file, not a GeoPackage"),
    ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00", "setup.exe is not a file type we accept"),
    ("roads.zip", b"\x7fELF\x02\x01\x01\x00\x00", "roads.zip is not a zip archive"),
    ("roads.kml", b"<html><body>Not found</body></html>", "roads.kml is not a KML file"),
    ("roads.geojson", b'{"error": "quota"}', "roads.geojson is not a GeoJSON file"),
])
def test_content_must_match_the_extension(tmp_path: Path, name: str, content: bytes,
                                          expected: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(content)
    assert expected in refused(path, name)


def test_bare_shp_empty_and_oversized_uploads_are_refused(tmp_path: Path, shp: dict) -> None:
    bare = tmp_path / "roads.shp"
    bare.write_bytes(shp[".shp"])
    assert sniff_format(bare) == "shp"
    assert "shapefiles need .shp, .shx and .dbf together" in refused(bare)
    (tmp_path / "empty.geojson").touch()
    assert "empty.geojson is empty" in refused(tmp_path / "empty.geojson")
    big = make_zip(tmp_path / "big.zip", parts(shp))
    message = refused(big, limits=UploadLimits(max_upload_bytes=100))
    assert "big.zip is" in message and "uploads are limited to" in message


# ---------------------------------------------------------------- hostile zips


Builder = Callable[[Path, dict], Path]
ZEROS = 50 * 1024 * 1024  # a classic bomb: 50 MB of zeros deflate to ~50 KB


def _only(members: Callable[[dict], dict[str, bytes]]) -> Builder:
    """An upload made of exactly these members (given the shapefile files)."""
    return lambda tmp, shp: make_zip(tmp / "up.zip", members(shp))


def _extra(name: str) -> Builder:
    """The genuine shapefile plus one hostile member."""
    return _only(lambda shp: {**parts(shp), name: b"pwned"})


def _symlink(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", parts(shp))
    link = zipfile.ZipInfo("roads.qix")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    return path


def _encrypted(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", parts(shp))
    patch_headers(path, 6, 8, lambda flags: flags | 0x1)
    return path


def _lying_size(tmp: Path, shp: dict) -> Path:
    """A bomb whose headers claim 1000 bytes: only reading the data reveals it."""
    path = make_zip(tmp / "up.zip", {**parts(shp), "zeros.bin": bytes(ZEROS)})
    patch_headers(path, 22, 24, lambda size: 1000 if size == ZEROS else size, "<I")
    return path


def _bad_crc(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", {**parts(shp), "notes.txt": b"a" * 1000}, zipfile.ZIP_STORED)
    data = path.read_bytes()
    at = data.find(b"a" * 1000) + 500
    path.write_bytes(data[:at] + b"b" + data[at + 1:])
    return path


def _truncated(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", parts(shp))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _overlap(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", {"a.txt": b"x" * 5000})
    add_overlapping_entry(path)
    return path


def _unknown_method(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", parts(shp))
    patch_headers(path, 8, 10, lambda method: 97)
    return path


def _duplicate(tmp: Path, shp: dict) -> Path:
    path = make_zip(tmp / "up.zip", parts(shp))
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("roads.prj", b'GEOGCS["evil"]')
    return path


HOSTILE: dict[str, tuple[Builder, str]] = {
    "dotdot": (_extra(f"../../{EVIL}"), "unsafe file name ('../../dx_archive_evil.txt') that "
               "could point outside the archive"),
    "dotdot-inside": (_extra(f"data/../../{EVIL}"), "point outside the archive"),
    "absolute": (_extra(f"/etc/cron.d/{EVIL}"), "point outside the archive"),
    "drive": (_extra(f"C:/Windows/{EVIL}"), "point outside the archive"),
    "drive-backslash": (_extra(f"C:\\{EVIL}"), "point outside the archive"),
    "backslash-dotdot": (_extra(f"..\\..\\{EVIL}"), "point outside the archive"),
    "root-backslash": (_extra(f"\\{EVIL}"), "point outside the archive"),
    "empty-part": (_extra(f"data//{EVIL}"), "point outside the archive"),
    "dot-part": (_extra(f"data/./{EVIL}"), "point outside the archive"),
    "symlink": (_symlink, "contains a symbolic link ('roads.qix')"),
    "nested-zip": (_extra("data/inner.zip"), "contains another archive ('data/inner.zip'). "
                   "Archives inside archives are not accepted: unzip it and upload them "
                   "separately"),
    "nested-kmz": (_extra("maps/doc.KMZ"), "contains another archive"),
    "nested-targz": (_extra("backup.tar.gz"), "contains another archive"),
    "nested-7z": (_extra("layers.7z"), "contains another archive"),
    "nested-rar": (_extra("layers.rar"), "contains another archive"),
    "encrypted": (_encrypted, "is password-protected ('roads.shp' is encrypted)"),
    "bomb": (_only(lambda shp: {**parts(shp), "zeros.bin": bytes(ZEROS)}),
             "up.zip looks like a zip bomb: zeros.bin unpacks from"),
    "many-small-zeros": (_only(lambda shp: {f"z{i}.bin": bytes(1_000_000) for i in range(60)}),
                         "looks like a zip bomb: the archive unpacks from"),
    "overlapping": (_overlap, "several files share the same compressed data"),
    "lying-header": (_lying_size, "up.zip: the archive is damaged or incomplete"),
    "bad-crc": (_bad_crc, "up.zip: the archive is damaged or incomplete"),
    "truncated": (_truncated, "up.zip: the archive is damaged or incomplete"),
    "unknown-method": (_unknown_method, "uses a compression method we cannot read"),
    "duplicate": (_duplicate, "contains 'roads.prj' twice"),
    "no-dbf": (_only(lambda shp: parts(shp, skip=(".dbf",))),
               "roads.shp has no roads.dbf: shapefiles need .shp, .shx and .dbf together"),
    "no-shx-in-folder": (_only(lambda shp: parts(shp, "GT/ROADS", True, (".shx",))),
                         "GT/ROADS.SHP has no ROADS.SHX: shapefiles need"),
    "case-mismatch": (_only(lambda shp: {**parts(shp, skip=(".dbf",)), "Roads.Dbf": shp[".dbf"]}),
                      "roads.shp has no roads.dbf: shapefiles need .shp, .shx and .dbf together. "
                      "Add it to the zip. (Roads.Dbf is there: rename it to exactly roads.dbf.)"),
    "mixed-case-shp": (_only(lambda shp: {**parts(shp, "GT/Roads", skip=(".shp",)),
                                          "GT/Roads.Shp": shp[".shp"]}),
                       "GT/Roads.Shp inside up.zip: rename it with .shp or .SHP"),
    "fake-geojson": (_only(lambda shp: {"roads.geojson": b"oops"}),
                     "roads.geojson inside up.zip is not a GeoJSON file"),
    "no-layers": (_only(lambda shp: {"readme.txt": b"hi", "meta.json": b"{}"}),
                  "up.zip contains no map layer we can read"),
    "empty-zip": (_only(lambda shp: {}), "up.zip contains no map layer we can read"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_zips_are_refused_without_writing_anything(tmp_path: Path, shp: dict,
                                                           case: str) -> None:
    build, expected = HOSTILE[case]
    upload = build(tmp_path, shp)
    before = snapshot(tmp_path)
    assert expected in refused(upload, "up.zip")
    assert snapshot(tmp_path) == before
    for folder in (tmp_path, tmp_path.parent, tmp_path.parent.parent, Path.cwd(),
                   Path(tempfile.gettempdir())):
        assert not (folder / EVIL).exists()


def test_limits_on_members_and_total_size(tmp_path: Path, shp: dict) -> None:
    many = make_zip(tmp_path / "many.zip", {**parts(shp), **{f"f{i}.txt": b"x" for i in range(6)}})
    message = refused(many, limits=UploadLimits(max_members=10))
    assert "many.zip contains too many files (11, limit 10)" in message
    big = make_zip(tmp_path / "big.zip", {**parts(shp), "photo.jpg": os.urandom(2 * 1024 * 1024)},
                   zipfile.ZIP_STORED)
    message = refused(big, limits=UploadLimits(max_uncompressed_bytes=1024 * 1024))
    assert "big.zip looks like a zip bomb: photo.jpg would unpack to more than the 1 MB" in message
    assert open_upload(big, "big.zip")[0].format == "shapefile"  # fine under the defaults


def test_kmz_without_kml_is_refused(tmp_path: Path) -> None:
    upload = make_zip(tmp_path / "x.kmz", {"files/icon.png": b"\x89PNG\r\n\x1a\n"})
    assert "x.kmz contains no .kml file we can read" in refused(upload)
