"""Work out which EPSG code an uploaded layer's coordinates are really in.

Agencies' files are mostly VN-2000 (a provincial TM-3 zone or UTM 48N). Their `.prj` is often
missing, or names the WGS 84 datum around TM-3 parameters, which read literally drops the
VN-2000 -> WGS 84 shift (~225 m at Đồng Xoài). We map every VN-2000 declaration to its EPSG code
so PROJ applies the official 7-parameter shift (EPSG:6960, Decision 05/2007/QĐ-BTNMT), and guess
from the bounds when nothing is declared. CRSs travel as EPSG codes or WKT, never proj4 strings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup
from shapely.geometry.base import BaseGeometry

from ..messages import Message

Bounds = tuple[float, float, float, float]

SHIFT_OPERATION = 6960  # "VN-2000 to WGS 84 (2)", the Decision 05/2007 parameters
DONG_XOAI: Bounds = (106.755, 11.461, 106.933, 11.577)
_WANTED = (4756, 3405, 3406, *range(5896, 5900), *range(9205, 9219))
_GUESS_EXTRA = (4326, 32648)  # WGS 84 data from GPS units and web maps
_TM_METHOD = "9807"  # EPSG code of the Transverse Mercator method
_TM_PARAMS = ("8801", "8802", "8805", "8806", "8807")  # lat0, lon0, k, FE, FN
_GEOD = Geod(ellps="WGS84")


def _exists(code: int) -> bool:
    try:
        CRS.from_epsg(code)
    except CRSError:
        return False
    return True


VN2000_EPSG: frozenset[int] = frozenset(c for c in _WANTED if _exists(c))
_REGION: Bounds = tuple(  # VN-2000's area of use plus 2°: anything outside is implausible
    v + pad for v, pad in zip(CRS.from_epsg(4756).area_of_use.bounds, (-2, -2, 2, 2), strict=True)
)


@dataclass(frozen=True)
class CrsCandidate:
    """One possible reading of the coordinates, explained so the upload planner can show it."""

    epsg: int
    name: str  # pyproj CRS name
    confidence: float  # 0..1
    reason: str  # a short Message for the planner


@dataclass(frozen=True)
class CrsDiagnosis:
    """The CRS to read a layer in, and whether a person must confirm it before we reproject."""

    epsg: int | None
    source: str  # "declared", "declared-corrected", "guessed" or "user"
    confidence: float
    candidates: tuple[CrsCandidate, ...]
    warnings: tuple[str, ...]
    needs_confirmation: bool


def _tm_params(crs: CRS) -> tuple[float, ...] | None:
    """Transverse Mercator parameters in metres/degrees, whatever the WKT dialect called them."""
    op = crs.coordinate_operation if crs.is_projected else None
    if op is None or op.method_code != _TM_METHOD or crs.axis_info[0].unit_conversion_factor != 1:
        return None
    values = {p.code: p.value for p in op.params}
    return tuple(values.get(code, 0.0) for code in _TM_PARAMS)


_VN_TM = {c: _tm_params(CRS.from_epsg(c)) for c in sorted(VN2000_EPSG) if c != 4756}


def _match_vn_projection(crs: CRS, default_epsg: int) -> int | None:
    """The VN-2000 projected EPSG code with the same TM parameters (the datum is checked apart)."""
    params = _tm_params(crs)
    if params is None:
        return None
    hits = [c for c, p in _VN_TM.items() if p and _close(p, params)]
    return default_epsg if default_epsg in hits else (hits[0] if hits else None)


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    tolerances = (1e-7, 1e-7, 1e-8, 1e-3, 1e-3)
    return all(abs(x - y) <= t for x, y, t in zip(a, b, tolerances, strict=True))


def _datum_family(crs: CRS) -> str | None:
    """'vn2000', 'wgs84' or None, from the datum and GEOGCS names in any WKT dialect."""
    geodetic = crs.geodetic_crs
    if geodetic is None:
        return None
    key = re.sub(r"[^a-z0-9]", "", f"{geodetic.datum.name} {geodetic.name}".lower())
    if "vn2000" in key or "vietnam2000" in key:
        return "vn2000"
    if "wgs1984" in key or "wgs84" in key or "worldgeodeticsystem1984" in key:
        return "wgs84"
    return None


def _operation_ids(node: object) -> Iterator[int]:
    """Every EPSG id inside a PROJJSON operation, so we can prove the shift is in the pipeline."""
    if isinstance(node, dict):
        ident = node.get("id")
        if isinstance(ident, dict) and ident.get("authority") == "EPSG":
            yield int(ident["code"])
        for value in node.values():
            yield from _operation_ids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _operation_ids(value)


@lru_cache(maxsize=64)
def transformer_to_wgs84(epsg: int) -> Transformer:
    """A thread-safe lon/lat transformer to EPSG:4326; VN-2000 codes are pinned to EPSG:6960.

    PROJ may otherwise pick EPSG:5194 ("VN-2000 to WGS 84 (1)") per point at run time for 4756
    and 3405. The chosen operation is rebuilt from PROJJSON (not proj4) so each thread gets its own.
    """
    if epsg not in VN2000_EPSG:
        return Transformer.from_crs(CRS.from_epsg(epsg), "EPSG:4326", always_xy=True)
    for option in TransformerGroup(epsg, 4326, always_xy=True).transformers:
        if SHIFT_OPERATION in set(_operation_ids(json.loads(option.to_json()))):
            return Transformer.from_pipeline(option.to_json())
    raise RuntimeError(f"PROJ offers no EPSG:{SHIFT_OPERATION} path from EPSG:{epsg} to WGS 84")


def shift_metres(epsg_declared_literal: str, epsg_corrected: int, x: float, y: float) -> float:
    """How far apart the literal and the corrected reading put one point, for the warning."""
    literal = Transformer.from_crs(CRS.from_user_input(epsg_declared_literal), 4326, always_xy=True)
    lon1, lat1 = literal.transform(x, y)
    lon2, lat2 = transformer_to_wgs84(epsg_corrected).transform(x, y)
    return float(_GEOD.inv(lon1, lat1, lon2, lat2)[2])


def _lonlat_box(epsg: int, bounds: Bounds) -> Bounds | None:
    """The data's bounds in WGS 84, or None when the coordinates make no sense in that CRS."""
    if not all(map(math.isfinite, bounds)):
        return None
    try:
        box = transformer_to_wgs84(epsg).transform_bounds(*bounds, densify_pts=5)
    except ProjError:
        return None
    return box if all(map(math.isfinite, box)) else None


def _gap_km(box: Bounds, city: Bounds) -> float:
    """Approximate distance between two lon/lat boxes (0 if they overlap); only used to rank."""
    dx = max(0.0, city[0] - box[2], box[0] - city[2])
    dy = max(0.0, city[1] - box[3], box[1] - city[3])
    lat = math.radians((city[1] + city[3]) / 2)
    return math.hypot(dx * 111.32 * math.cos(lat), dy * 110.57)


def _inside(lon: float, lat: float, box: Bounds, pad: float = 0.0) -> bool:
    return box[0] - pad <= lon <= box[2] + pad and box[1] - pad <= lat <= box[3] + pad


def _prior(code: int, default_epsg: int) -> float:
    """Tie-break penalty (in km of distance): the province's zone and WGS 84 first, then UTM."""
    if code in (default_epsg, 4326):
        return 0.0
    return {3405: 0.3, 3406: 0.3, 32648: 1.0}.get(code, 0.5)


def _guess(
    bounds: Bounds, default_epsg: int, city: Bounds | None, notes: tuple[str, ...]
) -> CrsDiagnosis:
    """Rank every VN-2000/WGS 84 reading of the bounds by how close it puts the data to the city."""
    scored: list[tuple[float, bool, int, float, Message]] = []
    for code in sorted({*VN2000_EPSG, *_GUESS_EXTRA, default_epsg}):
        crs = CRS.from_epsg(code)
        box = _lonlat_box(code, bounds)
        if box is None:
            continue
        lon, lat = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        area = _REGION if crs.is_geographic else crs.area_of_use.bounds
        if not (_inside(lon, lat, area, 1.0) and _inside(lon, lat, _REGION)):
            continue
        gap = _gap_km(box, city) if city else None
        if gap is None:
            reason = Message("Read as {crs}, the data centres on {lon:.4f}E {lat:.4f}N.",
                             crs=crs.name, lon=lon, lat=lat)
        elif gap == 0:
            reason = Message("Read as {crs}, the data centres on {lon:.4f}E {lat:.4f}N, inside "
                             "the city.", crs=crs.name, lon=lon, lat=lat)
        else:
            reason = Message("Read as {crs}, the data centres on {lon:.4f}E {lat:.4f}N, "
                             "{km:.0f} km away.", crs=crs.name, lon=lon, lat=lat, km=gap)
        prior = _prior(code, default_epsg)
        fit = 0.4 if gap is None else 0.7 - 0.25 * math.log10(1 + gap)
        scored.append(
            ((gap or 0.0) + prior, code != default_epsg, code, fit - 0.15 * prior, reason)
        )
    scored.sort()
    if not scored:
        note = Message("No VN-2000 or WGS 84 reading puts these coordinates in or near Vietnam.")
        return CrsDiagnosis(None, "guessed", 0.0, (), (*notes, note), True)
    cands: list[CrsCandidate] = []
    for score, _, code, conf, reason in scored[:5]:
        if score - scored[0][0] < 1.0 and len(scored) > 1 and scored[1][0] - scored[0][0] < 1.0:
            conf *= 0.8  # a runner-up fits almost as well: the coordinates cannot tell them apart
        conf = max(0.05, min([conf, *(c.confidence for c in cands[-1:])]))
        cands.append(CrsCandidate(code, CRS.from_epsg(code).name, round(conf, 3), reason))
    note = Message("Guessed {crs} (EPSG:{epsg}) from where the coordinates fall.",
                   crs=cands[0].name, epsg=cands[0].epsg)
    return CrsDiagnosis(
        cands[0].epsg, "guessed", cands[0].confidence, tuple(cands), (*notes, note), True
    )


def _from_declared(crs: CRS, text: str, bounds: Bounds, default_epsg: int) -> CrsDiagnosis | None:
    """Honour a declared CRS, but route VN-2000 (and the D_WGS_1984 trap) to EPSG codes."""
    base = crs.source_crs if crs.is_bound and crs.source_crs is not None else crs
    family = _datum_family(base)
    exact = base.to_epsg(min_confidence=100)
    vn = _match_vn_projection(base, default_epsg) if base.is_projected else None
    if vn is None and base.is_geographic and family == "vn2000":
        vn = 4756
    name = CRS.from_epsg(vn).name if vn else ""
    tm = _VN_TM.get(vn) if vn else None
    if vn and tm and family == "wgs84" and tm[2] == 0.9999:  # UTM on WGS 84 is genuine 326xx
        cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
        shift = shift_metres(text, vn, cx, cy)
        if not math.isfinite(shift):  # centre unusable: quote the shift at the zone's origin
            shift = shift_metres(text, vn, 500000.0, 1274000.0)
        warning = Message(
            "The .prj has the TM-3 parameters of {crs} but names the WGS 84 datum, a common "
            "mistake of Vietnamese tools; read literally it would move the data about "
            "{shift:.0f} m at its centre, so EPSG:{epsg} with the official VN-2000 shift is used.",
            crs=name, shift=shift, epsg=vn)
        reason = Message(
            "TM-3 parameters with a WGS 84 datum name: VN-2000 data with a mislabelled datum.")
        cand = CrsCandidate(vn, name, 0.75, reason)
        return CrsDiagnosis(vn, "declared-corrected", 0.75, (cand,), (warning,), True)
    if vn and family == "vn2000":
        source = "declared" if exact == vn else "declared-corrected"
        towgs84 = Message("The file's own TOWGS84 is replaced by the official EPSG:6960 shift.")
        notes = (towgs84,) if crs.is_bound else ()
        reason = Message("The declared VN-2000 CRS matches {crs} (EPSG:{epsg}).", crs=name,
                         epsg=vn)
        conf = 1.0 if source == "declared" else 0.9
        return CrsDiagnosis(vn, source, conf, (CrsCandidate(vn, name, conf, reason),), notes, False)
    code = exact or base.to_epsg()
    if code is None:
        return None
    conf = 1.0 if exact else 0.85
    cand = CrsCandidate(code, CRS.from_epsg(code).name, conf,
                        Message("Declared as EPSG:{epsg}.", epsg=code))
    return CrsDiagnosis(code, "declared", conf, (cand,), (), conf < 0.9)


# The datum check: at most this many features, and vertices of them, are looked at.
_FIT_FEATURES = 1000
_FIT_POINTS = 4000
_ALIGNED_M = 20.0  # a vertex this close to a ward boundary sits on it
_DEG_M = 111_320.0  # metres in a degree of latitude (and of longitude at the equator)


def vn2000_counterpart(epsg: int, default_epsg: int = 9212) -> int | None:
    """The VN-2000 code with the projection of a projected WGS 84 code (32648 -> 3405,
    32649 -> 3406, a WGS 84 TM-3 -> its 9205-9218 zone), None for any other code."""
    crs = CRS.from_epsg(epsg)
    if not crs.is_projected or _datum_family(crs) != "wgs84":
        return None
    return _match_vn_projection(crs, default_epsg)


class _Reference:
    """The ward shapes in local metres (lon scaled by the cosine of their latitude), indexed
    once for both readings."""

    def __init__(self, areas: list[BaseGeometry]) -> None:
        bounds = shapely.total_bounds(areas)
        lat = (bounds[1] + bounds[3]) / 2
        self.scale = np.array([_DEG_M * math.cos(math.radians(lat)), _DEG_M])
        shapes = [shapely.transform(a, lambda c: c * self.scale) for a in areas]
        self.areas = shapely.STRtree(shapes)
        self.lines = shapely.STRtree(shapely.boundary(np.asarray(shapes, dtype=object)))


@dataclass(frozen=True)
class _Fit:
    """How one reading of the sampled vertices sits on the wards (per vertex)."""

    inside: np.ndarray  # in a ward (or the city's box)
    aligned: np.ndarray  # within _ALIGNED_M of a ward boundary


def _fit(epsg: int, coords: np.ndarray, ref: _Reference) -> _Fit:
    lon, lat = transformer_to_wgs84(epsg).transform(coords[:, 0], coords[:, 1])
    points = shapely.points(np.column_stack([lon, lat]) * ref.scale)
    inside = np.zeros(len(coords), dtype=bool)
    inside[ref.areas.query(points, predicate="intersects")[0]] = True
    aligned = np.zeros(len(coords), dtype=bool)
    aligned[ref.lines.query(points, predicate="dwithin", distance=_ALIGNED_M)[0]] = True
    return _Fit(inside, aligned)


def _better(gained: int, lost: int, n: int) -> bool:
    """A reading is consistently better: it gains many vertices and loses next to none."""
    return gained >= max(5, 0.01 * n) and lost * 10 <= gained


def check_datum(
    diagnosis: CrsDiagnosis,
    geoms: np.ndarray,
    wards: list[BaseGeometry],
    city_bounds: Bounds | None,
    default_epsg: int = 9212,
) -> CrsDiagnosis:
    """Catch VN-2000 coordinates behind a WGS 84 projected `.prj` (e.g. 32648 for 3405).

    No file-level check can see that lie; the wards can. The same projected coordinates are
    read in the declared WGS 84 CRS and in its VN-2000 counterpart (about 225 m apart), and
    if the VN-2000 reading puts clearly more vertices on ward boundaries or inside the wards
    (city box without wards) while losing next to none, it is offered, to be confirmed.
    At most a thousand features and four thousand vertices are looked at.
    """
    if diagnosis.epsg is None or diagnosis.source == "user":
        return diagnosis
    vn = vn2000_counterpart(diagnosis.epsg, default_epsg)
    areas = list(wards) or ([shapely.box(*city_bounds)] if city_bounds else [])
    if vn is None or not areas or not len(geoms):
        return diagnosis
    picked = geoms[:: -(-len(geoms) // _FIT_FEATURES)]
    coords = shapely.get_coordinates(picked)
    coords = coords[np.isfinite(coords).all(axis=1)]
    coords = coords[:: max(1, -(-len(coords) // _FIT_POINTS))]
    if not len(coords):
        return diagnosis
    ref = _Reference(areas)
    try:
        wgs, vn_fit = _fit(diagnosis.epsg, coords, ref), _fit(vn, coords, ref)
    except ProjError:
        return diagnosis
    n = len(coords)

    def gain(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
        return int((b & ~a).sum()), int((a & ~b).sum())

    on_boundary = bool(wards) and _better(*gain(wgs.aligned, vn_fit.aligned), n)
    if not (on_boundary or _better(*gain(wgs.inside, vn_fit.inside), n)):
        return diagnosis
    shift = shift_metres(f"EPSG:{diagnosis.epsg}", vn, *coords[len(coords) // 2])
    name = CRS.from_epsg(vn).name
    warning = Message(
        "Read as EPSG:{declared} (WGS 84), {wgs_in} of {n} sampled vertices lie in the wards "
        "and {wgs_on} on a ward boundary; read as EPSG:{epsg} ({crs}), the same coordinates "
        "put {vn_in} in the wards and {vn_on} on a boundary, {shift:.0f} m away. The "
        "coordinates are most likely VN-2000 behind a WGS 84 declaration, so EPSG:{epsg} is "
        "proposed: check the map and confirm, or read the file as EPSG:{declared}.",
        declared=diagnosis.epsg, n=n, wgs_in=int(wgs.inside.sum()),
        wgs_on=int(wgs.aligned.sum()), epsg=vn, crs=name, vn_in=int(vn_fit.inside.sum()),
        vn_on=int(vn_fit.aligned.sum()), shift=shift)
    reason = Message("The VN-2000 reading fits the wards better than the declared WGS 84 one.")
    cand = CrsCandidate(vn, name, 0.8, reason)
    source = "guessed" if diagnosis.source == "guessed" else "declared-corrected"
    return CrsDiagnosis(vn, source, 0.8, (cand, *diagnosis.candidates),
                        (*diagnosis.warnings, warning), True)


def diagnose_crs(
    declared: str | None,
    bounds: Bounds,
    *,
    default_epsg: int = 9212,
    city_bounds: Bounds | None = DONG_XOAI,
) -> CrsDiagnosis:
    """Decide which EPSG code to read `bounds`-shaped data in, and whether to ask the user.

    `declared` is the .prj WKT or the dataset's embedded CRS (e.g. "EPSG:9212"), or None.
    """
    text = (declared or "").strip()
    if not text:
        return _guess(bounds, default_epsg, city_bounds, ())
    try:
        crs = CRS.from_user_input(text)
    except CRSError:
        note = Message("The declared CRS could not be parsed; it was guessed from the "
                       "coordinates.")
        return _guess(bounds, default_epsg, city_bounds, (note,))
    found = _from_declared(crs, text, bounds, default_epsg)
    if found is None or found.epsg is None:
        note = Message("The declared CRS '{crs}' has no EPSG equivalent; guessed from "
                       "coordinates.", crs=crs.name)
        return _guess(bounds, default_epsg, city_bounds, (note,))
    box = _lonlat_box(found.epsg, bounds)
    lon_lat = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) if box else None
    if lon_lat and _inside(*lon_lat, _REGION):
        return found
    note = Message("Read as declared (EPSG:{epsg}), the coordinates do not fall in Vietnam.",
                   epsg=found.epsg)
    guess = _guess(bounds, default_epsg, city_bounds, (note,))
    if guess.epsg is None:
        return CrsDiagnosis(
            found.epsg, found.source, 0.2, found.candidates, (*found.warnings, note), True
        )
    return CrsDiagnosis(
        guess.epsg,
        "guessed",
        guess.confidence,
        guess.candidates + found.candidates,
        guess.warnings,
        True,
    )
