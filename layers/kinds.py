"""The standard layer kinds, their fields and vocabularies, in Vietnamese and English.

A kind tells the store which properties a feature may carry and how to check them, and
tells the map how to label and colour them. Layers of no standard kind are ``generic``:
their fields are whatever the layer declares.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidFeature
from .messages import Message
from .text import NAME_MAX, TEXT_MAX, nfc

# A "year" is a whole number shown as written (2020), never grouped like a count (2.020).
FIELD_TYPES = ("text", "integer", "number", "date", "boolean", "choice", "year")
# Names that say a whole-number column holds years: nam_thanh_lap, since_year, NAM…
YEAR_NAME = re.compile(r"(^|_)(year|nam)(_|$)")


def year_like(name: str, values: Iterable[int]) -> bool:
    """Whether a whole-number column named ``name`` holding ``values`` is a column of years."""
    return bool(YEAR_NAME.search(name.lower())) and all(1000 <= v <= 2999 for v in values)


@dataclass(frozen=True)
class Choice:
    """One value of a vocabulary, with its labels and map colour."""

    value: str | int
    vi: str
    en: str
    color: str = "#607d8b"

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


@dataclass(frozen=True)
class FieldDef:
    """A typed property of a layer's features."""

    name: str
    type: str
    vi: str
    en: str
    choices: tuple[Choice, ...] = ()
    required: bool = False
    filterable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # Shown on the public map when the layer is public; planners untick internal fields.
    public: bool = True
    # Longest text a text field holds, in characters.
    max_length: int = TEXT_MAX

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi

    def choice(self, value: Any) -> Choice | None:
        return next((c for c in self.choices if c.value == value), None)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form, stored with each layer so a layer describes itself."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "vi": self.vi, "en": self.en}
        if self.choices:
            out["choices"] = [
                {"value": c.value, "vi": c.vi, "en": c.en, "color": c.color} for c in self.choices
            ]
        for key in ("required", "filterable"):
            if getattr(self, key):
                out[key] = True
        if not self.public:
            out["public"] = False
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.max_length != TEXT_MAX:
            out["max_length"] = self.max_length
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldDef:
        if data.get("type") not in FIELD_TYPES:
            raise InvalidFeature(Message("Unknown field type {type!r}", type=data.get("type")))
        kind = data["type"]
        if kind == "integer" and YEAR_NAME.search(data["name"]):
            kind = "year"  # stored before years had their own type
        return cls(
            name=data["name"],
            type=kind,
            vi=data.get("vi", data["name"]),
            en=data.get("en", data["name"]),
            choices=tuple(Choice(**c) for c in data.get("choices", ())),
            required=bool(data.get("required", False)),
            filterable=bool(data.get("filterable", False)),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            public=bool(data.get("public", True)),
            max_length=int(data.get("max_length", TEXT_MAX)),
        )


@dataclass(frozen=True)
class Kind:
    """A standard kind of layer: its geometry, fields and which field colours the map."""

    name: str
    vi: str
    en: str
    geometry_type: str
    fields: tuple[FieldDef, ...]
    color_by: str | None = None
    color: str = "#3f51b5"
    title_field: str = "name"

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi

    def field(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)


def _ward_field() -> FieldDef:
    return FieldDef("ward", "text", "Phường/xã", "Ward", filterable=True)


NAME = FieldDef("name", "text", "Tên", "Name", required=True, max_length=NAME_MAX)

HOTSPOT_STATUS = FieldDef(
    "status", "choice", "Trạng thái", "Status", required=True, filterable=True,
    choices=(
        Choice("reported", "Tiếp nhận", "Reported", "#e53935"),
        Choice("verified", "Đã xác minh", "Verified", "#fb8c00"),
        Choice("in_progress", "Đang xử lý", "In progress", "#fdd835"),
        Choice("resolved", "Đã xử lý", "Resolved", "#43a047"),
        Choice("dismissed", "Không xác lập", "Dismissed", "#9e9e9e"),
    ),
)

NOT_ASSESSED = 0  # the severity of a hotspot nobody has assessed yet

HOTSPOT_CATEGORY = FieldDef(
    "category", "choice", "Loại ô nhiễm", "Category", required=True, filterable=True,
    choices=(
        Choice("illegal_dumping", "Đổ rác trái phép", "Illegal dumping", "#6d4c41"),
        Choice("water", "Ô nhiễm nguồn nước", "Water pollution", "#1e88e5"),
        Choice("air", "Ô nhiễm không khí", "Air pollution", "#78909c"),
        Choice("noise", "Tiếng ồn", "Noise", "#8e24aa"),
        Choice("odour", "Mùi hôi", "Odour", "#c0ca33"),
        Choice("polluting_facility", "Cơ sở gây ô nhiễm", "Polluting facility", "#d81b60"),
        Choice("illegal_extraction", "Khai thác tài nguyên trái phép",
               "Illegal resource extraction", "#f4511e"),
        Choice("other", "Khác", "Other", "#607d8b"),
    ),
)

KINDS: dict[str, Kind] = {
    "ward": Kind(
        "ward", "Ranh giới phường/xã", "Ward boundaries", "MultiPolygon",
        fields=(
            FieldDef("code", "text", "Mã đơn vị", "Code", required=True),
            NAME,
            FieldDef("type", "choice", "Loại đơn vị", "Type", required=True, choices=(
                Choice("phuong", "Phường", "Ward (phường)"),
                Choice("xa", "Xã", "Commune (xã)"),
            )),
            FieldDef("population", "integer", "Dân số", "Population", minimum=0),
        ),
        color="#37474f",
    ),
    "hotspot": Kind(
        "hotspot", "Điểm nóng ô nhiễm", "Pollution hotspots", "Point",
        fields=(
            NAME,
            HOTSPOT_CATEGORY,
            FieldDef("severity", "choice", "Mức độ", "Severity", required=True, filterable=True,
                     choices=(
                         # A citizen's report until an inspector assesses it: no guess that
                         # would weigh in a score (analysis treats 0 as unknown).
                         Choice(NOT_ASSESSED, "Chưa đánh giá", "Not yet assessed", "#bdbdbd"),
                         Choice(1, "Nhẹ", "Low", "#fdd835"),
                         Choice(2, "Trung bình", "Medium", "#fb8c00"),
                         Choice(3, "Nghiêm trọng", "High", "#e53935"),
                     )),
            HOTSPOT_STATUS,
            FieldDef("reported_at", "date", "Ngày tiếp nhận", "Reported on", required=True,
                     filterable=True),
            FieldDef("resolved_at", "date", "Ngày xử lý xong", "Resolved on"),
            _ward_field(),
            FieldDef("description", "text", "Mô tả", "Description"),
            FieldDef("source", "choice", "Nguồn phát hiện", "Source", choices=(
                Choice("inspection", "Kiểm tra", "Inspection"),
                Choice("citizen", "Người dân phản ánh", "Citizen report"),
                Choice("press", "Báo chí", "Press"),
            )),
        ),
        color_by="status",
        color="#e53935",
    ),
    "collection_point": Kind(
        "collection_point", "Điểm tập kết rác", "Waste collection points", "Point",
        fields=(
            NAME,
            FieldDef("type", "choice", "Loại điểm", "Type", required=True, filterable=True,
                     choices=(
                         Choice("transfer_point", "Điểm trung chuyển", "Transfer point",
                                "#00897b"),
                         Choice("bin_cluster", "Cụm thùng rác", "Bin cluster", "#26a69a"),
                         Choice("sorting_station", "Điểm phân loại rác tại nguồn",
                                "Sorting-at-source station", "#2e7d32"),
                     )),
            FieldDef("schedule", "text", "Lịch thu gom", "Collection schedule"),
            FieldDef("capacity", "number", "Sức chứa (m³)", "Capacity (m³)", minimum=0),
            _ward_field(),
            FieldDef("operator", "text", "Đơn vị thu gom", "Operator"),
        ),
        color_by="type",
        color="#00897b",
    ),
    "model_community": Kind(
        "model_community", "Mô hình điểm", "Model communities", "Point",
        fields=(
            NAME,
            FieldDef("model_type", "choice", "Loại mô hình", "Model type", required=True,
                     filterable=True, choices=(
                         Choice("sorting_at_source", "Phân loại rác tại nguồn",
                                "Sorting at source", "#3949ab"),
                         Choice("self_managed", "Khu dân cư tự quản về môi trường",
                                "Self-managed residential area", "#5e35b1"),
                         Choice("plastic_free", "Nói không với rác thải nhựa", "Plastic-free",
                                "#1e88e5"),
                         Choice("composting", "Ủ phân hữu cơ tại hộ gia đình",
                                "Household composting", "#6d4c41"),
                         Choice("green_clean", "Xanh – sạch – đẹp", "Green, clean, beautiful",
                                "#43a047"),
                     )),
            FieldDef("since_year", "year", "Năm thành lập", "Since year",
                     minimum=1990, maximum=2100),
            FieldDef("households", "integer", "Số hộ tham gia", "Households", minimum=0),
            _ward_field(),
            FieldDef("partner", "text", "Tổ chức phối hợp", "Partner organisation"),
        ),
        color_by="model_type",
        color="#3949ab",
    ),
    "place_of_worship": Kind(
        "place_of_worship", "Cơ sở tôn giáo", "Places of worship", "Point",
        fields=(
            NAME,
            FieldDef("religion", "choice", "Tôn giáo", "Religion", required=True,
                     filterable=True, choices=(
                         Choice("buddhism", "Phật giáo", "Buddhism", "#f9a825"),
                         Choice("catholicism", "Công giáo", "Catholicism", "#5c6bc0"),
                         Choice("protestantism", "Tin Lành", "Protestantism", "#29b6f6"),
                         Choice("caodaism", "Cao Đài", "Caodaism", "#ef6c00"),
                         Choice("other", "Khác", "Other", "#8d6e63"),
                     )),
            FieldDef("in_model", "boolean", "Tham gia mô hình", "Takes part in a model"),
            _ward_field(),
        ),
        color_by="religion",
        color="#8d6e63",
    ),
    "generic": Kind("generic", "Lớp dữ liệu khác", "Other layer", "Geometry", fields=()),
}


def get_kind(name: str) -> Kind:
    """Look a kind up by name; unknown names are an error, not a silent generic."""
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidFeature(Message("Unknown layer kind {name!r}; expected one of {kinds}",
                                     name=name, kinds=list(KINDS))) from None


def _coerce(f: FieldDef, value: Any) -> Any:
    """Convert one raw value to the field's type, or raise ValueError saying why."""
    if f.type == "choice":
        allowed = [c.value for c in f.choices]
        if isinstance(allowed[0], int) and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, str):
            value = nfc(value)
        if value not in allowed:
            raise ValueError(Message("must be one of {allowed}", allowed=allowed))
        return value
    if f.type == "text":
        if not isinstance(value, str | int | float):
            raise ValueError(Message("must be text"))
        return nfc(str(value))
    if f.type in ("integer", "year"):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(_not_whole())
        number: float = _convert(int, value, _not_whole)
    elif f.type == "number":
        if isinstance(value, bool):
            raise ValueError(_not_number())
        number = _convert(float, value, _not_number)
    elif f.type == "date":
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return _convert(dt.date.fromisoformat, str(value).strip(),
                        lambda: Message("must be a date written YYYY-MM-DD")).isoformat()
    elif f.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "có"):
            return True
        if text in ("false", "0", "no", "không"):
            return False
        raise ValueError(Message("must be true or false"))
    else:  # pragma: no cover - FIELD_TYPES is closed
        raise ValueError(f"unknown type {f.type}")
    if f.minimum is not None and number < f.minimum:
        raise ValueError(Message("must be at least {minimum:g}", minimum=f.minimum))
    if f.maximum is not None and number > f.maximum:
        raise ValueError(Message("must be at most {maximum:g}", maximum=f.maximum))
    return number


# Made only when a value fails: an import of a million rows converts millions of values.
def _not_whole() -> Message:
    return Message("must be a whole number")


def _not_number() -> Message:
    return Message("must be a number")


def _convert(convert: Callable[[Any], Any], value: Any, problem: Callable[[], Message]) -> Any:
    """``convert(value)``, its failure told as ``problem()`` rather than Python's own words."""
    try:
        return convert(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(problem()) from None


def _joined(problems: list[Message]) -> Message:
    """Several problems as one message, each translated on its own."""
    out = problems[0]
    for problem in problems[1:]:
        out = Message("{first}; {then}", first=out, then=problem)
    return out


def property_cleaner(fields: tuple[FieldDef, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``clean_properties`` for one set of fields, prepared once for many features."""
    names = frozenset(f.name for f in fields)
    by_name = {f.name: f for f in fields}
    plan = [(f, f.name, f.type == "text", f.required, f.max_length) for f in fields]
    dated = "reported_at" in names and "resolved_at" in names

    def clean(props: dict[str, Any]) -> dict[str, Any]:
        problems: list[Message] = []
        if not names.issuperset(props):
            problems.append(Message("unknown field(s): {names}",
                                    names=sorted(set(props) - names)))
        out: dict[str, Any] = {}
        for f, name, text, required, limit in plan:
            value = props.get(name)
            if isinstance(value, str):
                value = nfc(value)
            if text and type(value) is str and value:  # the common case, first
                out[name] = value
                if len(value) > limit:
                    problems.append(Message("{field}: longer than {limit} characters",
                                            field=f, limit=limit))
                continue
            if value is None or value == "":
                if required:
                    problems.append(Message("{field}: required", field=f))
                continue
            try:
                out[name] = _coerce(f, value)
            except (ValueError, TypeError) as exc:
                problems.append(Message("{field}: {problem}", field=f, problem=exc.args[0]))
        if dated and "reported_at" in out and "resolved_at" in out and (
                out["resolved_at"] < out["reported_at"]):
            problems.append(Message("{field}: must not be before {other}",
                                    field=by_name["resolved_at"], other=by_name["reported_at"]))
        if problems:
            raise InvalidFeature(Message("Invalid properties — {problems}",
                                         problems=_joined(problems)))
        return out

    return clean


def clean_properties(fields: tuple[FieldDef, ...], props: dict[str, Any]) -> dict[str, Any]:
    """Check and type a feature's properties against its layer's fields.

    Returns a new dict with NFC text, ISO dates and typed numbers; empty values are
    dropped. Raises InvalidFeature naming every problem, so a planner fixes them at once.
    """
    return property_cleaner(fields)(props)
