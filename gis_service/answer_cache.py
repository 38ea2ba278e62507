"""Answers kept by what they were made from, so a repeated request costs a lookup.

A key names the layer (its slug, creation time, data version and revision, which every
write to its features bumps) and the request, so a write makes new keys and an old answer
is never served. The key's digest is the answer's ETag: a client that has it gets a 304
without the answer being made again. Tiles and feature pages share one cache per worker.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue

from layers.store import Layer

GEOJSON = "application/geo+json"
# Staff answers are checked again at every use; public ones may be kept a minute by proxies.
PRIVATE_CACHE = "private, max-age=0, must-revalidate"
PUBLIC_CACHE = "public, max-age=60"


class AnswerCache:
    """Answers by key, least recently used dropped first once over a byte budget; shared
    by the threads of one worker (each gunicorn worker has its own)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._answers: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._answers.get(key)
            if data is not None:
                self._answers.move_to_end(key)
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        if len(data) > self.budget:
            return
        with self._lock:
            old = self._answers.pop(key, None)
            self.size += len(data) - (len(old) if old is not None else 0)
            self._answers[key] = data
            while self.size > self.budget:
                _, dropped = self._answers.popitem(last=False)
                self.size -= len(dropped)


def init_app(app: Flask) -> None:
    app.extensions["gis_answer_cache"] = AnswerCache(int(app.config["CACHE_BYTES"]))


def layer_key(layer: Layer) -> tuple[Hashable, ...]:
    """What a layer's answers depend on: its features (revision, data version) and which
    layer of that slug it is (a layer made again under a slug starts a new revision)."""
    return layer.slug, layer.created_at, layer.data_version, layer.revision


def args_key(args: dict[str, list[str]]) -> tuple[Hashable, ...]:
    """A request's parameters, in an order that does not depend on how they were sent."""
    return tuple(sorted((name, tuple(values)) for name, values in args.items()))


def cached_answer(key: tuple[Hashable, ...], mimetype: str, cache_control: str,
                  make: Callable[[], bytes]) -> ResponseReturnValue:
    """The answer filed under ``key``, made by ``make`` when it is not kept; with its ETag,
    or a 304 when the client already has it."""
    etag = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache_control}
    if request.if_none_match.contains(etag):
        return "", 304, headers
    cache: AnswerCache = current_app.extensions["gis_answer_cache"]
    data = cache.get(key)
    if data is None:
        data = make()
        cache.put(key, data)
    return current_app.response_class(data, mimetype=mimetype, headers=headers)
