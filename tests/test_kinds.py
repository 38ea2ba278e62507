"""The layer kinds: vocabularies, labels and property checking."""

import unicodedata

import pytest

from layers.errors import InvalidFeature
from layers.kinds import KINDS, FieldDef, clean_properties, get_kind

HOTSPOT = KINDS["hotspot"].fields


def hotspot(**extra):
    props = {
        "name": "Bãi rác tự phát",
        "category": "illegal_dumping",
        "severity": 2,
        "status": "reported",
        "reported_at": "2023-05-01",
    }
    props.update(extra)
    return props


def test_standard_kinds_and_their_vocabularies():
    assert set(KINDS) == {
        "ward", "hotspot", "collection_point", "model_community", "place_of_worship", "generic",
    }
    statuses = [c.value for c in KINDS["hotspot"].field("status").choices]
    assert statuses == ["reported", "verified", "in_progress", "resolved", "dismissed"]
    categories = {c.value for c in KINDS["hotspot"].field("category").choices}
    assert {"illegal_dumping", "water", "air", "noise", "odour", "polluting_facility",
            "illegal_extraction", "other"} == categories
    # 0 is "not yet assessed": a citizen report before an inspector sees it.
    assert [c.value for c in KINDS["hotspot"].field("severity").choices] == [0, 1, 2, 3]
    assert {c.value for c in KINDS["collection_point"].field("type").choices} == {
        "transfer_point", "bin_cluster", "sorting_station"}
    assert {c.value for c in KINDS["ward"].field("type").choices} == {"phuong", "xa"}


def test_every_field_and_choice_has_vietnamese_and_english_labels():
    for kind in KINDS.values():
        assert kind.label("vi") and kind.label("en")
        for f in kind.fields:
            assert f.label("vi") and f.label("en"), f.name
            for c in f.choices:
                assert c.label("vi") and c.label("en")
    assert KINDS["hotspot"].field("status").choice("resolved").label("vi") == "Đã xử lý"


def test_clean_properties_types_and_normalises_text():
    nfd = unicodedata.normalize("NFD", "Phường Tân Đồng")
    out = clean_properties(HOTSPOT, hotspot(severity="3", ward=nfd, description="  x  "))
    assert out["severity"] == 3
    assert out["ward"] == "Phường Tân Đồng" and unicodedata.is_normalized("NFC", out["ward"])
    assert out["description"] == "x"
    assert "resolved_at" not in out


def test_clean_properties_names_every_problem():
    with pytest.raises(InvalidFeature) as err:
        clean_properties(HOTSPOT, hotspot(status="fixed", severity=7, colour="red", name=""))
    message = err.value.message
    for part in ("Status", "Severity", "unknown field(s): colour", "Name: required"):
        assert part in message


def test_dates_are_iso_and_resolution_cannot_precede_report():
    assert clean_properties(HOTSPOT, hotspot(resolved_at="2023-06-01"))["resolved_at"] == (
        "2023-06-01")
    with pytest.raises(InvalidFeature, match="Resolved on: must not be before Reported on"):
        clean_properties(HOTSPOT, hotspot(resolved_at="2023-04-01"))
    with pytest.raises(InvalidFeature, match="Reported on: must be a date written YYYY-MM-DD"):
        clean_properties(HOTSPOT, hotspot(reported_at="01/05/2023"))


def test_numbers_booleans_and_bounds():
    worship = KINDS["place_of_worship"].fields
    base = {"name": "Chùa Phước Huệ", "religion": "buddhism"}
    assert clean_properties(worship, {**base, "in_model": "có"})["in_model"] is True
    with pytest.raises(InvalidFeature, match="Takes part in a model: must be true or false"):
        clean_properties(worship, {**base, "in_model": "maybe"})
    models = KINDS["model_community"].fields
    with pytest.raises(InvalidFeature, match="Since year: must be at least"):
        clean_properties(models, {"name": "x", "model_type": "plastic_free", "since_year": 1200})
    with pytest.raises(InvalidFeature, match="Households: must be a whole number"):
        clean_properties(models, {"name": "x", "model_type": "plastic_free", "households": 2.5})


def test_field_definitions_round_trip_and_unknown_kind_is_refused():
    for f in HOTSPOT:
        assert FieldDef.from_dict(f.to_dict()) == f
    with pytest.raises(InvalidFeature, match="Unknown layer kind"):
        get_kind("rivers")
