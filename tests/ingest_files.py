"""Builders of the files agencies send, for the ingest tests: shapefiles in VN-2000 with
legacy encodings, GeoPackages, GeoJSON, KML/KMZ and CSV, zipped as they arrive."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
from pyproj import CRS, Transformer

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
                    encoding: str = "utf-8", prj: str | None = "epsg",
                    cpg: str | None = None) -> list[Path]:
    """A shapefile whose text is stored in ``encoding`` (as legacy tools do), with or
    without .prj and .cpg. Returns its files."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = frame.copy()
    for column in frame.columns:
        if column != frame.geometry.name and frame[column].dtype != "geometry":
            frame[column] = [encode(v, encoding).decode("latin-1") if isinstance(v, str) else v
                             for v in frame[column]]
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
