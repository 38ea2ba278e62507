"""Illustrative, seeded sample data for Đồng Xoài: wards, hotspots and the plan's other layers.

Why: demos, tests and a first run need a city that looks real before the office loads its
own files. Everything here is generated — the outline is hand-drawn, the wards are Voronoi
cells, the points are random — so every layer title says "(minh hoạ)". Only the ward codes
and names are official. Field names and vocabularies come from ``layers.kinds`` and every
feature passes ``clean_properties``, so the sample can never drift from the kinds.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from .errors import LayerExists
from .kinds import NOT_ASSESSED, Choice, clean_properties, get_kind
from .messages import SAMPLE_NOTE, Message
from .store.base import Store

ILLUSTRATIVE_NOTE_VI = (
    "Dữ liệu minh hoạ do máy tạo ngẫu nhiên, không phải ranh giới hay số liệu chính thức."
)
ILLUSTRATIVE_NOTE_EN = SAMPLE_NOTE  # also the note of the sample layers' first version

SAMPLE_LAYERS: dict[str, str] = {
    "wards": "ward",
    "hotspots": "hotspot",
    "collection-points": "collection_point",
    "model-communities": "model_community",
    "places-of-worship": "place_of_worship",
}

# Shown on the public map out of the box, so /public has something to show; the other
# sample layers stay internal, which shows the difference.
PUBLIC_SAMPLE_LAYERS = frozenset({"wards", "hotspots"})

SampleFeature = tuple[BaseGeometry, dict[str, Any]]

# Hand-drawn approximation of the pre-2025 city outline (lon, lat), about 165 km².
_OUTLINE = Polygon([
    (106.762, 11.552), (106.785, 11.561), (106.806, 11.559), (106.820, 11.553),
    (106.838, 11.558), (106.856, 11.566), (106.895, 11.567), (106.912, 11.574),
    (106.925, 11.568), (106.926, 11.552), (106.931, 11.530), (106.926, 11.512),
    (106.924, 11.497), (106.914, 11.481), (106.897, 11.478), (106.872, 11.477),
    (106.856, 11.473), (106.832, 11.474), (106.820, 11.465), (106.808, 11.465),
    (106.805, 11.483), (106.790, 11.488), (106.765, 11.489), (106.761, 11.502),
    (106.768, 11.512), (106.760, 11.527), (106.764, 11.541),
])

# Official code and name; a Voronoi seed placed by hand (close together in the centre, so the
# urban wards come out small); an illustrative population.
_WARD_SEEDS: tuple[tuple[str, str, tuple[float, float], int], ...] = (
    ("25195", "Phường Tân Phú", (106.884, 11.536), 17_800),
    ("25198", "Phường Tân Đồng", (106.903, 11.540), 14_200),
    ("25201", "Phường Tân Bình", (106.868, 11.527), 15_600),
    ("25204", "Phường Tân Xuân", (106.893, 11.554), 16_900),
    ("25205", "Phường Tân Thiện", (106.888, 11.516), 11_400),
    ("25207", "Xã Tân Thành", (106.830, 11.547), 12_300),
    ("25210", "Phường Tiến Thành", (106.800, 11.500), 13_700),
    ("25213", "Xã Tiến Hưng", (106.895, 11.488), 16_500),
)

_STREETS = (
    "đường Phú Riềng Đỏ", "đường Hùng Vương", "đường Trần Hưng Đạo", "đường Lê Duẩn",
    "đường Nguyễn Huệ", "Quốc lộ 14", "đường ĐT741", "đường Lý Thường Kiệt",
    "đường Trường Chinh", "đường Tôn Đức Thắng", "đường Hồ Xuân Hương",
    "đường Nguyễn Văn Linh", "đường Lê Quý Đôn", "đường Nguyễn Chí Thanh",
)

# Hotspot name templates by category value; a category without one falls back to its label.
_HOTSPOT_NAMES: dict[str, tuple[str, ...]] = {
    "illegal_dumping": ("Bãi rác tự phát {}", "Đổ xà bần trái phép ven {}"),
    "water": ("Nước thải cơ sở chế biến mủ cao su {}", "Nước thải sinh hoạt chảy tràn {}"),
    "air": ("Khói lò sấy hạt điều {}", "Bụi công trình xây dựng {}"),
    "noise": ("Tiếng ồn xưởng cưa gỗ {}", "Tiếng ồn quán karaoke {}"),
    "odour": ("Mùi hôi trại chăn nuôi heo {}", "Mùi hôi cống thoát nước {}"),
    "polluting_facility": ("Cơ sở chế biến hạt điều {}", "Xưởng sản xuất phân bón {}"),
    "illegal_extraction": ("Khai thác đất trái phép {}", "Khai thác cát trái phép gần {}"),
    "other": ("Đốt rác lộ thiên {}", "Xác động vật vứt bỏ {}"),
}

# Religion value -> (name prefix, name stems or () for the ward's own name, relative weight).
_WORSHIP: dict[str, tuple[str, tuple[str, ...], int]] = {
    "buddhism": ("Chùa", ("Phước Huệ", "Long Sơn", "Bửu Quang", "Pháp Hoa", "Quang Minh",
                          "Thiên Phước", "Linh Sơn", "Hưng Long"), 7),
    "catholicism": ("Nhà thờ Giáo xứ", ("Thánh Tâm", "Vinh Sơn", "Phú Lộc", "Mẫu Tâm",
                                        "Thánh Giuse", "Bình Tân", "Tân Hòa"), 7),
    "protestantism": ("Hội thánh Tin Lành", (), 3),
    "caodaism": ("Thánh thất Cao Đài", (), 2),
    "other": ("Miếu", ("Bà Chúa Xứ", "Bà Thiên Hậu", "Ông Địa"), 1),
}

_SCHEDULES = ("Hằng ngày, 5:00–7:00", "Hằng ngày, 17:00–19:00",
              "Thứ Hai, Tư, Sáu; 6:00–8:00", "Thứ Ba, Năm, Bảy; 16:00–18:00")
_OPERATORS = ("Tổ thu gom rác dân lập", "Đội vệ sinh môi trường thành phố",
              "Hợp tác xã dịch vụ môi trường")
_PARTNERS = ("Hội Liên hiệp Phụ nữ {ward}", "Đoàn Thanh niên {ward}", "Hội Cựu chiến binh {ward}",
             "Ban công tác Mặt trận {place}")
_FIRST_DAY, _LAST_DAY = dt.date(2021, 1, 1), dt.date(2025, 12, 31)


@dataclass(frozen=True)
class _Ward:
    code: str
    name: str
    type: str
    population: int
    geom: MultiPolygon

    @property
    def short(self) -> str:
        """The name without "Phường"/"Xã", as places are named after their ward."""
        return self.name.split(" ", 1)[1]


def _choices(kind: str, field: str) -> list[Choice]:
    definition = get_kind(kind).field(field)
    assert definition is not None, f"{kind}.{field} is not in layers.kinds"
    return list(definition.choices)


def _cover(rng: random.Random, options: list[Choice], n: int, weights: list[int] | None = None
           ) -> list[Choice]:
    """n draws holding every option at least once, so no legend entry or filter is empty."""
    drawn = options + rng.choices(options, weights=weights, k=n - len(options))
    rng.shuffle(drawn)
    return drawn


def _feature(kind: str, geom: BaseGeometry, props: dict[str, Any]) -> SampleFeature:
    """Check properties against the kind now, so a bad sample fails here, not at load time."""
    return geom, clean_properties(get_kind(kind).fields, props)


def _wards() -> list[_Ward]:
    """Voronoi cells of the seeds clipped to the outline: a tiling with no gaps or overlaps."""
    seeds = MultiPoint([seed for _, _, seed, _ in _WARD_SEEDS])
    cells = shapely.voronoi_polygons(seeds, extend_to=_OUTLINE, ordered=True).geoms
    types = _choices("ward", "type")
    wards = []
    for (code, name, _, population), cell in zip(_WARD_SEEDS, cells, strict=True):
        part = cell.intersection(_OUTLINE)
        geom = part if isinstance(part, MultiPolygon) else MultiPolygon([part])
        ward_type = next(t.value for t in types if name.startswith(f"{t.vi} "))
        wards.append(_Ward(code, name, str(ward_type), population, geom))
    return wards


def _site(rng: random.Random, wards: list[_Ward]) -> tuple[Point, _Ward, str, str]:
    """A random point strictly inside a ward (chosen by population), a street and a hamlet."""
    ward = rng.choices(wards, weights=[w.population for w in wards])[0]
    minx, miny, maxx, maxy = ward.geom.bounds
    while True:  # rounded to 6 decimals (~0.1 m), then re-checked against the ward
        point = Point(round(rng.uniform(minx, maxx), 6), round(rng.uniform(miny, maxy), 6))
        if point.within(ward.geom):
            break
    unit = "ấp" if ward.type == "xa" else "khu phố"
    return point, ward, rng.choice(_STREETS), f"{unit} {rng.randint(1, 8)}"


def _hotspots(rng: random.Random, wards: list[_Ward], n: int) -> list[SampleFeature]:
    statuses = _cover(rng, _choices("hotspot", "status"), n)
    categories = _cover(rng, _choices("hotspot", "category"), n)
    sources = _choices("hotspot", "source")
    severities = [c for c in _choices("hotspot", "severity") if c.value != NOT_ASSESSED]
    span = (_LAST_DAY - _FIRST_DAY).days
    out = []
    for status, category in zip(statuses, categories, strict=True):
        point, ward, street, place = _site(rng, wards)
        template = rng.choice(_HOTSPOT_NAMES.get(str(category.value), (category.vi + " {}",)))
        reported = _FIRST_DAY + dt.timedelta(days=rng.randint(0, span))
        resolved = min(reported + dt.timedelta(days=rng.randint(2, 150)), _LAST_DAY)
        source = rng.choice(sources)
        out.append(_feature("hotspot", point, {
            "name": template.format(street),
            "category": category.value,
            "severity": rng.choice(severities).value,
            "status": status.value,
            "reported_at": reported,
            "resolved_at": resolved if status.value == "resolved" else None,
            "ward": ward.code,
            "description": f"{category.vi} tại {street}, {place}, {ward.name}; nguồn: "
                           f"{source.vi.lower()}. Dữ liệu minh hoạ.",
            "source": source.value,
        }))
    return out


def _collection_points(rng: random.Random, wards: list[_Ward], n: int) -> list[SampleFeature]:
    out = []
    for kind in _cover(rng, _choices("collection_point", "type"), n):
        point, ward, street, place = _site(rng, wards)
        out.append(_feature("collection_point", point, {
            "name": f"{kind.vi} {street} ({place})",
            "type": kind.value,
            "schedule": rng.choice(_SCHEDULES),
            "capacity": round(rng.uniform(0.5, 12.0), 1),
            "ward": ward.code,
            "operator": rng.choice(_OPERATORS),
        }))
    return out


def _model_communities(rng: random.Random, wards: list[_Ward], n: int) -> list[SampleFeature]:
    out = []
    for model in _cover(rng, _choices("model_community", "model_type"), n):
        point, ward, _, place = _site(rng, wards)
        ward_text = ward.name[0].lower() + ward.name[1:]  # "phường Tân Phú" in running text
        partner = rng.choice(_PARTNERS).format(ward=ward_text, place=place)
        out.append(_feature("model_community", point, {
            "name": f"Mô hình “{model.vi}” {place}, {ward.name}",
            "model_type": model.value,
            "since_year": rng.randint(2015, 2025),
            "households": rng.randint(25, 250),
            "ward": ward.code,
            "partner": partner,
        }))
    return out


def _places_of_worship(rng: random.Random, wards: list[_Ward], n: int) -> list[SampleFeature]:
    religions = _choices("place_of_worship", "religion")
    weights = [_WORSHIP[str(r.value)][2] for r in religions]
    out = []
    for religion in _cover(rng, religions, n, weights):
        point, ward, _, _ = _site(rng, wards)
        prefix, stems, _ = _WORSHIP[str(religion.value)]
        out.append(_feature("place_of_worship", point, {
            "name": f"{prefix} {rng.choice(stems) if stems else ward.short}",
            "religion": religion.value,
            "in_model": rng.random() < 0.35,
            "ward": ward.code,
        }))
    return out


def build_sample(seed: int = 2021) -> dict[str, list[SampleFeature]]:
    """Every sample layer's features by slug; the same seed always gives the same data."""
    rng = random.Random(seed)
    wards = _wards()
    return {
        "wards": [
            _feature("ward", w.geom, {
                "code": w.code, "name": w.name, "type": w.type, "population": w.population,
            })
            for w in wards
        ],
        "hotspots": _hotspots(rng, wards, 150),
        "collection-points": _collection_points(rng, wards, 300),
        "model-communities": _model_communities(rng, wards, 40),
        "places-of-worship": _places_of_worship(rng, wards, 60),
    }


def load_sample(store: Store, *, seed: int = 2021, replace: bool = False) -> dict[str, int]:
    """Create the sample layers (wards and hotspots public) and fill them; never overwrite."""
    data = build_sample(seed)
    existing = [layer.slug for layer in store.list_layers() if layer.slug in SAMPLE_LAYERS]
    if existing and not replace:
        raise LayerExists(Message(
            "Sample layer(s) already exist: {slugs}; replace them to reload", slugs=existing))
    for slug in existing:
        store.delete_layer(slug)
    for slug, kind in SAMPLE_LAYERS.items():
        store.create_layer(slug, f"{get_kind(kind).vi} (minh hoạ)", kind,
                           public=slug in PUBLIC_SAMPLE_LAYERS,
                           features=data[slug], note=Message(ILLUSTRATIVE_NOTE_EN))
    return {slug: len(features) for slug, features in data.items()}
