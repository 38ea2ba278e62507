"""How a page of features is told to a client: its counts and the link to the next one."""

from __future__ import annotations

from collections.abc import Callable

from layers.query import after_text
from layers.store import FeaturePage


def page_counts(page: FeaturePage) -> dict[str, int]:
    """``numberMatched`` when the store counted it (it stops counting a large match, as
    OGC API Features allows) and ``numberReturned``."""
    counts = {} if page.matched is None else {"numberMatched": page.matched}
    return {**counts, "numberReturned": len(page.features)}


def next_links(page: FeaturePage, url: Callable[..., str], args: dict[str, list[str]]
               ) -> list[dict[str, str]]:
    """The ``next`` link of a page that has one: the same query, resumed after its end."""
    if page.next_after is None:
        return []
    args = {**args, "after": [after_text(page.next_after)], "limit": [str(page.query.limit)]}
    return [{"rel": "next", "type": "application/geo+json", "href": url(**args)}]
