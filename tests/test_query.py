"""Parsing of feature queries shared by the API and the map page."""

import pytest

from layers.errors import InvalidQuery
from layers.kinds import KINDS
from layers.query import MAX_LIMIT, filter_params, parse_bbox, parse_query

HOTSPOT = KINDS["hotspot"].fields


def q(**params):
    return parse_query({k: v if isinstance(v, list) else [v] for k, v in params.items()}, HOTSPOT)


def test_filters_bbox_and_paging_are_parsed():
    query = q(bbox="106.8,11.5,106.9,11.55", limit="50", after="281474976710655.9",
              status=["reported", "verified"], severity="3", reported_from="2022-01-01")
    assert query.bbox == (106.8, 11.5, 106.9, 11.55)
    assert (query.limit, query.after) == (50, (2**48 - 1, 9))
    assert query.equals == {"status": ("reported", "verified"), "severity": (3,)}
    assert query.ranges == (("reported_at", ">=", "2022-01-01"),)


def test_empty_values_mean_no_filter():
    assert q(status="", ward="").equals == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bbox": "1,2,3"}, "four numbers"),
        ({"bbox": "a,b,c,d"}, "four numbers"),
        ({"bbox": "106.9,11.5,106.8,11.6"}, "greater than"),
        ({"bbox": "500000,1270000,570000,1280000"}, "degrees"),
        ({"bbox": "nan,1,2,3"}, "finite"),
        ({"limit": "0"}, "between 1"),
        ({"limit": str(MAX_LIMIT + 1)}, "between 1"),
        ({"limit": "ten"}, "whole number"),
        ({"after": "-1"}, "next link"),
        ({"after": "281474976710656.1"}, "next link"),
        ({"offset": "1000"}, "Unknown parameter 'offset'"),
        ({"status": "fixed"}, "status must be one of"),
        ({"severity": "9"}, "severity must be one of"),
        ({"reported_from": "31/12/2022"}, "YYYY-MM-DD"),
        ({"colour": "red"}, "Unknown parameter 'colour'"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(params, message):
    with pytest.raises(InvalidQuery, match=message):
        q(**params)


def test_each_layer_accepts_only_its_own_filters():
    assert set(filter_params(HOTSPOT)) == {
        "category", "severity", "status", "ward", "reported_from", "reported_to"}
    assert filter_params(KINDS["ward"].fields) == []
    with pytest.raises(InvalidQuery, match="status"):
        parse_query({"status": ["resolved"]}, KINDS["collection_point"].fields)


def test_parse_bbox_accepts_whole_world():
    assert parse_bbox("-180,-90,180,90") == (-180, -90, 180, 90)
