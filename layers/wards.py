"""Wards: which ward a place lies in, and which ward a name as agencies write it means.

Wards are a layer like any other (kind ``ward``, with ``code`` and ``name``), so no list is
written here: the store's ward layers are the reference. One matcher reads what forms,
citizen reports and imported files say (``25195``, ``P. Tân Phú``, ``P.Tân Thiện``,
``X. Tiến Hưng``, ``TAN BINH``, ``Tan Binh``) as a ward code, and one function gives each
feature that names no ward the ward it lies in (``place_wards``), so the ward filter finds
it whichever way it arrived.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .errors import InvalidFeature
from .kinds import get_kind
from .messages import Message
from .query import MAX_LIMIT, FeatureQuery
from .store import Store
from .text import nfc

WARD_FIELD = "ward"
# How far outside the city's box a report may still lie, in degrees (about 27 km).
CITY_MARGIN = 0.25
# The words (and their abbreviations) for the kind of unit that may precede a ward's name.
UNITS = {"p": "phuong", "phuong": "phuong", "x": "xa", "xa": "xa", "tt": "thi tran",
         "thi tran": "thi tran", "thitran": "thi tran"}
UNIT_RE = re.compile(r"^(thi tran|thitran|phuong|xa|tt|p|x)\b\s*")
SHOWN = 10  # unmatched names quoted in a message

Item = tuple[BaseGeometry, dict[str, Any]]


def ward_key(text: str) -> tuple[str, str]:
    """(unit, name) of a ward as written, without case, tone marks or punctuation:
    ``P.Tân Thiện`` and ``phuong tan thien`` are both ``("phuong", "tan thien")``."""
    folded = unicodedata.normalize("NFD", nfc(text).replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    words = re.sub(r"[^a-z0-9]+", " ", plain).strip()
    unit = UNIT_RE.match(words)
    if unit is None:
        return "", words
    return UNITS[unit.group(1)], words[unit.end():]


def _code_text(value: object) -> str:
    """A code as text: a file's 25195 or 25195.0 is the code ``25195``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return nfc(str(value))


class Wards:
    """The wards of every ward layer: their codes, their names' spellings and their shapes.

    Layers created later come first: where old and new boundaries overlap (the 2025
    merger), a place lies in the current ward, and a name both use means the current one.
    """

    def __init__(self, layers: list[list[tuple[str, str, BaseGeometry]]]) -> None:
        """``layers``: each ward layer's (code, name, geometry), the newest layer first."""
        wards = [ward for layer in layers for ward in layer]
        self.codes = [code for code, _, _ in wards]
        self._known = set(self.codes)
        # Spelling key -> the codes it names in the newest layer that has it.
        self._names: dict[tuple[str, str], set[str]] = {}
        for layer in layers:
            spelled: dict[tuple[str, str], set[str]] = {}
            for code, name, _ in layer:
                unit, stem = ward_key(name)
                for key in ((unit, stem), ("", stem)):
                    spelled.setdefault(key, set()).add(code)
            self._names = {**spelled, **self._names}
        self._tree = shapely.STRtree([geom for _, _, geom in wards])

    @classmethod
    def of(cls, store: Store) -> Wards:
        """The wards of the store's ward layers."""
        layers = []
        for layer in reversed(store.list_layers()):
            if layer.kind == "ward":
                page = store.query_features(layer.slug, FeatureQuery(limit=MAX_LIMIT))
                layers.append([(_code_text(f.properties.get("code", "")),
                                str(f.properties.get("name", "")), f.geometry)
                               for f in page.features])
        return cls(layers)

    def __bool__(self) -> bool:
        return bool(self.codes)

    @property
    def shapes(self) -> list[BaseGeometry]:
        """Every ward's geometry (lon/lat), e.g. to check an import's datum against."""
        return list(self._tree.geometries)

    def code(self, value: object) -> str | None:
        """The code of the ward ``value`` names (its code, or its name however written);
        None when it names none, or more than one."""
        text = _code_text(value)
        if text in self._known:
            return text
        unit, stem = ward_key(text)
        # The unit as written first; agencies mislabel units, so then the name alone.
        found = self._names.get((unit, stem)) or self._names.get(("", stem), set())
        return next(iter(found)) if len(found) == 1 else None

    def locate(self, geoms: Iterable[BaseGeometry]) -> list[str | None]:
        """The code of the ward each geometry lies in (a point inside its surface), or None."""
        points = shapely.point_on_surface(np.asarray(list(geoms), dtype=object))
        found: list[str | None] = [None] * len(points)
        if not len(points) or not self.codes:
            return found
        inputs, hits = self._tree.query(points, predicate="intersects")
        for i, hit in sorted(zip(inputs.tolist(), hits.tolist(), strict=True), reverse=True):
            found[i] = self.codes[hit]  # sorted backwards: the first layer's ward is set last
        return found

    def unmatched(self, values: Iterable[object]) -> list[str]:
        """The distinct ward names among ``values`` that match no ward, in order (none
        without ward layers: there is nothing to match against)."""
        codes = self._codes(values)
        return [nfc(str(v)) for v, code in codes.items() if code is None] if self else []

    def _codes(self, values: Iterable[object]) -> dict[object, str | None]:
        """Each distinct given ward (names repeat a lot in a file) and its code."""
        return {v: self.code(v) for v in dict.fromkeys(values) if v is not None
                and nfc(str(v))}

    def place(self, items: list[Item]) -> list[Item]:
        """``items`` with each ward as its code, and the ward it lies in where none is given.

        Raises InvalidFeature naming the wards that match nothing, so none is stored
        under a name the ward filter would never find. Without ward layers there is
        nothing to check against, and the items are returned as they came.
        """
        if not self:
            return items
        codes = self._codes(props.get(WARD_FIELD) for _, props in items)
        unknown = [nfc(str(v)) for v, code in codes.items() if code is None]
        if unknown:
            raise InvalidFeature(unmatched_message(unknown))
        missing = [n for n, (_, props) in enumerate(items) if props.get(WARD_FIELD) not in codes]
        located = dict(zip(missing, self.locate(items[n][0] for n in missing), strict=True))
        out = []
        for n, (geom, props) in enumerate(items):
            ward = located[n] if n in located else codes[props[WARD_FIELD]]
            out.append((geom, {**props, WARD_FIELD: ward} if ward else props))
        return out


def unmatched_message(names: list[str]) -> Message:
    """What to say about ward names that match no ward."""
    return Message("{count} ward name(s) match no ward of the ward layers: {names}. Use a "
                   "ward's code or name, or leave the ward empty to use the ward the place "
                   "lies in", count=len(names), names=[repr(n) for n in names[:SHOWN]])


def has_wards(kind: str) -> bool:
    """Whether features of ``kind`` carry a ward."""
    return kind != "generic" and get_kind(kind).field(WARD_FIELD) is not None


def place_wards(store: Store, kind: str, items: list[Item]) -> list[Item]:
    """Wards of new or edited features of ``kind`` as codes, by location where not given.

    The one step the hotspot form, citizen reports and imports all take before storing.
    """
    return Wards.of(store).place(items) if has_wards(kind) else items


def check_near_city(geom: BaseGeometry, bounds: tuple[float, float, float, float],
                    margin: float = CITY_MARGIN) -> BaseGeometry:
    """``geom``, if it lies within the city's box widened by ``margin`` degrees: a place
    typed or picked far away (0, 0 is the usual one) is a mistake, not a report."""
    minx, miny, maxx, maxy = bounds
    if not geom.intersects(shapely.box(minx - margin, miny - margin, maxx + margin,
                                       maxy + margin)):
        raise InvalidFeature(Message("The place lies far outside the city; choose it on "
                                     "the map"))
    return geom
