"""Feature queries: one parser for the API, the map page and the CLI.

Parameters arrive as strings (a URL's query, a form, a command line). They are checked
against the layer's filterable fields here, so every entry point refuses the same bad
input with the same message.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import InvalidQuery
from .kinds import FieldDef
from .messages import Message

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000

# A page resumes after the last feature of the one before: its place key and its id.
_AFTER_RE = re.compile(r"^(\d{1,15})\.(\d{1,19})$")

# Date fields are filtered by range: reported_from / reported_to on ``reported_at``.
DATE_RANGE_PARAMS = {"reported_from": ("reported_at", ">="), "reported_to": ("reported_at", "<=")}


@dataclass(frozen=True)
class FeatureQuery:
    """A validated query: bounding box, paging and equality/range filters.

    ``after`` is the (place key, id) of the last feature of the previous page, from the
    page's ``next`` link: pages resume there instead of counting past an offset, so a
    deep page costs what the first one costs.
    """

    bbox: tuple[float, float, float, float] | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[int, int] | None = None
    equals: dict[str, tuple[str | int, ...]] = field(default_factory=dict)
    ranges: tuple[tuple[str, str, str], ...] = ()  # (field, operator, iso date)
    properties: tuple[str, ...] | None = None  # only these properties in the answer


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``minx,miny,maxx,maxy`` in degrees, refusing swapped or out-of-range values."""
    parts = text.split(",")
    four = Message("bbox must be four numbers: minLon,minLat,maxLon,maxLat")
    if len(parts) != 4:
        raise InvalidQuery(four)
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError:
        raise InvalidQuery(four) from None
    if not all(map(_finite, (minx, miny, maxx, maxy))):
        raise InvalidQuery(Message("bbox values must be finite numbers"))
    if minx > maxx or miny > maxy:
        raise InvalidQuery(Message("bbox minimum is greater than its maximum"))
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90
            and -90 <= maxy <= 90):
        raise InvalidQuery(Message("bbox must be in degrees (longitude ±180, latitude ±90)"))
    return minx, miny, maxx, maxy


def _finite(x: float) -> bool:
    return x == x and x not in (float("inf"), float("-inf"))


def whole_number(name: str, text: str, lo: int, hi: int) -> int:
    """A bounded whole number from a parameter's text, or the reason it is not one."""
    try:
        value = int(text)
    except ValueError:
        raise InvalidQuery(Message("{name} must be a whole number", name=name)) from None
    if not lo <= value <= hi:
        raise InvalidQuery(Message("{name} must be between {lo} and {hi}", name=name, lo=lo,
                                   hi=hi))
    return value


def filter_params(fields: Iterable[FieldDef]) -> list[str]:
    """Names of the filter parameters a layer with these fields accepts."""
    names = [f.name for f in fields if f.filterable and f.type != "date"]
    if any(f.name == "reported_at" and f.filterable for f in fields):
        names += list(DATE_RANGE_PARAMS)
    return names


def parse_query(
    args: Mapping[str, list[str]],
    fields: Iterable[FieldDef],
    *,
    ignore: Iterable[str] = (),
) -> FeatureQuery:
    """Build a FeatureQuery from multi-valued string parameters.

    ``args`` maps each parameter to its values (as ``request.args.to_dict(flat=False)``).
    Unknown parameters are refused rather than ignored, so a typo never silently shows
    the wrong data. Empty values mean "no filter", as an unset form field sends them.
    """
    fields = list(fields)
    by_name = {f.name: f for f in fields}
    allowed = set(filter_params(fields))
    bbox = None
    limit, after = DEFAULT_LIMIT, None
    equals: dict[str, tuple[str | int, ...]] = {}
    ranges: list[tuple[str, str, str]] = []
    properties: tuple[str, ...] | None = None
    for name, raw_values in args.items():
        values = [v for v in raw_values if v.strip()]
        if name in ignore or not values:
            continue
        if name == "bbox":
            bbox = parse_bbox(values[-1])
        elif name == "limit":
            limit = whole_number("limit", values[-1], 1, MAX_LIMIT)
        elif name == "after":
            after = parse_after(values[-1])
        elif name == "properties":
            properties = tuple(p.strip() for p in values[-1].split(",") if p.strip())
            unknown = sorted(set(properties) - set(by_name))
            if unknown:
                raise InvalidQuery(Message(
                    "Unknown propert(y/ies) {unknown}; this layer has: {known}",
                    unknown=unknown, known=list(by_name) or "—"))
        elif name in DATE_RANGE_PARAMS and name in allowed:
            target, op = DATE_RANGE_PARAMS[name]
            try:
                day = dt.date.fromisoformat(values[-1].strip())
            except ValueError:
                raise InvalidQuery(
                    Message("{name} must be a date written YYYY-MM-DD", name=name)) from None
            ranges.append((target, op, day.isoformat()))
        elif name in allowed:
            equals[name] = tuple(_filter_value(by_name[name], v) for v in values)
        else:
            hint = ", ".join(["bbox", "limit", "after", "properties", *sorted(allowed)])
            raise InvalidQuery(Message("Unknown parameter {name!r}; this layer accepts: {hint}",
                                       name=name, hint=hint))
    return FeatureQuery(bbox, limit, after, equals, tuple(ranges), properties)


def after_text(after: tuple[int, int]) -> str:
    """An ``after`` value as a ``next`` link writes it, for ``parse_after`` to read."""
    return f"{after[0]}.{after[1]}"


def parse_after(text: str) -> tuple[int, int]:
    """The (place key, id) of an ``after`` value, as a ``next`` link writes it."""
    found = _AFTER_RE.match(text.strip())
    if not found or int(found[1]) >= 2**48 or int(found[2]) >= 2**63:
        raise InvalidQuery(Message("after must be the value of a next link, such as 0.25"))
    return int(found[1]), int(found[2])


def _filter_value(f: FieldDef, text: str) -> str | int:
    text = text.strip()
    if not f.choices:
        return text
    for choice in f.choices:
        if str(choice.value) == text:
            return choice.value
    allowed = ", ".join(str(c.value) for c in f.choices)
    raise InvalidQuery(Message("{name} must be one of {allowed}; got {text!r}", name=f.name,
                               allowed=allowed, text=text))
