"""Builders of the files agencies send, for the ingest tests: shapefiles in VN-2000 with
legacy encodings, GeoPackages, GeoJSON, KML/KMZ and CSV, zipped as they arrive."""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
from pyproj import CRS, Transformer
from shapely.geometry import Point

from layers.ingest.encoding import encode

# A known point near Đồng Xoài (RECIPES.md): WGS84 ↔ VN-2000 / TM-3 106-15 (EPSG:9212).
WGS84_POINT = (106.8472, 11.5197)
TM3_POINT = (564948.563, 1274006.181)

# The common trap: TM-3 106-15 parameters on a datum named WGS 84.
TRAP_PRJ = (
    'PROJCS["VN_2000_TM3_106_15",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",'
    'SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],'
    'UNIT["Degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],'
    'PARAMETER["Central_Meridian",106.25],PARAMETER["Scale_Factor",0.9999],'
    'PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
)


def tm3(lon: float, lat: float) -> tuple[float, float]:
    """WGS84 → EPSG:9212 with the official shift, for placing test features."""
    return Transformer.from_crs(4326, 9212, always_xy=True).transform(lon, lat)


def write_shapefile(folder: Path, stem: str, frame: gpd.GeoDataFrame, *,
                    encoding: str | list[str] = "utf-8", prj: str | None = "epsg",
                    cpg: str | None = None) -> list[Path]:
    """A shapefile whose text is stored in ``encoding`` (as legacy tools do; a list gives
    each row's, as in two agencies' files merged), with or without .prj and .cpg. Returns
    its files."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = frame.copy()
    rows = [encoding] * len(frame) if isinstance(encoding, str) else encoding
    for column in frame.columns:
        if column != frame.geometry.name and frame[column].dtype != "geometry":
            frame[column] = [encode(v, e).decode("latin-1") if isinstance(v, str) else v
                             for v, e in zip(frame[column], rows, strict=True)]
    path = folder / f"{stem}.shp"
    pyogrio.write_dataframe(frame, path, encoding="latin1")
    for suffix in (".cpg", ".prj"):
        (folder / f"{stem}{suffix}").unlink(missing_ok=True)
    if cpg:
        (folder / f"{stem}.cpg").write_text(cpg)
    if prj == "epsg":
        (folder / f"{stem}.prj").write_text(CRS.from_epsg(frame.crs.to_epsg()).to_wkt("WKT1_ESRI"))
    elif prj:
        (folder / f"{stem}.prj").write_text(prj)
    return sorted(folder.glob(f"{stem}.*"))


def zip_files(target: Path, files: list[Path], prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            archive.write(f, prefix + f.name)
    return target


# -- agency files of issue 8 -------------------------------------------------------------------
def kml_folder(name: str, *content: str) -> str:
    """A KML Folder as Google Earth writes it, holding Placemarks and Folders."""
    inner = "\n\t\t".join(content)
    return f"<Folder>\n\t\t<name>{name}</name>\n\t\t<open>1</open>\n\t\t{inner}\n\t</Folder>"


def google_earth_kml(*content: str) -> str:
    """A KML as Google Earth Pro saves it: gx extensions, shared styles and a StyleMap, and
    the Folders and Placemarks given (see ``kml_folder``, ``placemark``)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:gx="http://www.google.com/kml/ext/2.2" \
xmlns:kml="http://www.opengis.net/kml/2.2" xmlns:atom="http://www.w3.org/2005/Atom">
<Document>
	<name>Điểm rác.kml</name>
	<gx:CascadingStyle kml:id="__managed_style_1"><Style><IconStyle><scale>1.2</scale><Icon>\
<href>https://earth.gstatic.com/earth/rpc/cc/icon?color=1976d2&amp;id=2000&amp;scale=4</href>\
</Icon></IconStyle></Style></gx:CascadingStyle>
	<Style id="s_ylw-pushpin"><IconStyle><scale>1.1</scale><Icon>\
<href>http://maps.google.com/mapfiles/kml/pushpin/ylw-pushpin.png</href></Icon>\
<hotSpot x="20" y="2" xunits="pixels" yunits="pixels"/></IconStyle></Style>
	<StyleMap id="m_ylw-pushpin"><Pair><key>normal</key><styleUrl>#s_ylw-pushpin</styleUrl>\
</Pair><Pair><key>highlight</key><styleUrl>#s_ylw-pushpin_hl</styleUrl></Pair></StyleMap>
	{"".join(content)}
</Document>
</kml>
"""


def placemark(name: str, lon: float, lat: float, description: str = "", **data: str) -> str:
    """One Google Earth Placemark: a LookAt, the shared StyleMap, ExtendedData, and an
    optional description in CDATA (Google Earth writes HTML there)."""
    extended = "".join(f'<Data name="{k}"><value>{v}</value></Data>' for k, v in data.items())
    return f"""<Placemark>
			<name>{name}</name>
			{f"<description><![CDATA[{description}]]></description>" if description else ""}
			<LookAt><longitude>{lon}</longitude><latitude>{lat}</latitude><altitude>0</altitude>\
<heading>0</heading><tilt>0</tilt><range>1000</range>\
<gx:altitudeMode>relativeToSeaFloor</gx:altitudeMode></LookAt>
			<styleUrl>#m_ylw-pushpin</styleUrl>
			{f"<ExtendedData>{extended}</ExtendedData>" if extended else ""}
			<Point><gx:drawOrder>1</gx:drawOrder><coordinates>{lon},{lat},0</coordinates></Point>
		</Placemark>"""


def nonfinite_shapefile_zip(folder: Path, frame: gpd.GeoDataFrame,
                            poison: dict[float, float]) -> Path:
    """A point shapefile whose coordinates ``poison``'s keys are then overwritten in the .shp
    with its values (NaN, ±Infinity), which GDAL refuses to write but old tools do."""
    files = write_shapefile(folder, "diem", frame)
    shp = folder / "diem.shp"
    data = shp.read_bytes()
    for placeholder, value in poison.items():
        data = data.replace(struct.pack("<d", placeholder), struct.pack("<d", value))
    shp.write_bytes(data)
    return zip_files(folder.parent / "diem.zip", files)


def many_layer_geopackage(path: Path, count: int) -> Path:
    """A GeoPackage of ``count`` one-point layers ``lop_0000``…: one written by GDAL, the
    others copied in SQL (GDAL would take a minute to write them one by one)."""
    frame = gpd.GeoDataFrame({"ten": ["điểm 0"]}, geometry=[Point(*WGS84_POINT)], crs=4326)
    pyogrio.write_dataframe(frame, path, layer="lop_0000", SPATIAL_INDEX=False)
    with contextlib.closing(sqlite3.connect(path)) as db:
        geom = db.execute("SELECT geom FROM lop_0000").fetchone()[0]
        ddl = db.execute("SELECT sql FROM sqlite_master WHERE name = 'lop_0000'").fetchone()[0]
        contents = db.execute("SELECT * FROM gpkg_contents").fetchone()
        columns = db.execute("SELECT * FROM gpkg_geometry_columns").fetchone()
        for i in range(1, count):
            name = f"lop_{i:04d}"
            db.execute(ddl.replace("lop_0000", name))
            insert = f'INSERT INTO "{name}" (geom, ten) VALUES (?, ?)'  # noqa: S608 - ours
            db.execute(insert, (geom, f"điểm {i}"))
            db.execute("INSERT INTO gpkg_contents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (name, contents[1], name, *contents[3:]))
            db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, ?, ?, ?)",
                       (name, *columns[1:]))
        db.commit()
    return path
