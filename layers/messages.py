"""What the core says to people, as message ids with parameters, so any face can translate it.

A message's id is its English template, with ``{name}`` placeholders (``str.format``
syntax), written where the message arises::

    raise InvalidQuery(Message("{name} must be a whole number", name=name))

A Message *is* its English text (a ``str``), so notebooks, the CLI and the logs read it as
before; the web face looks the id up in its catalogue and fills in the parameters
(``gis_service.i18n.tr``). pybabel extracts every id from ``layers/`` by the keywords
``Message`` and ``kept``, and tests/test_i18n.py fails while one lacks a Vietnamese entry:
adding a message is this one call where it arises, plus its line in messages.po.

Text the stores keep and hand back later (version and audit notes) is plain text in the
database; its templates are declared here, at the end, with ``kept`` so ``recognise`` can
turn the text read back into the Message it was.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

Translate = Callable[[str], str]


def _english(template: str) -> str:
    return template


class Message(str):
    """An English sentence that remembers its template (``id``) and ``params``.

    A parameter may itself be a Message (translated along), core data named in each
    language (a kind, a field, a choice: anything with ``label(lang)``, shown by its label
    in the language asked), or a list or tuple of these, joined by commas.
    """

    id: str
    params: dict[str, Any]

    def __new__(cls, id: str, /, **params: Any) -> Message:  # noqa: A002 - the gettext name
        self = super().__new__(cls, render(id, params, _english, "en"))
        self.id = id
        self.params = params
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Any]]:
        return (self.id,), self.params

    def translated(self, translate: Translate, lang: str) -> str:
        """The text in ``lang``; ``translate`` is that language's gettext of English ids."""
        return render(self.id, self.params, translate, lang)


def _shown(value: Any, translate: Translate, lang: str) -> Any:
    if isinstance(value, Message):
        return value.translated(translate, lang)
    if isinstance(value, list | tuple):
        return ", ".join(str(_shown(v, translate, lang)) for v in value)
    if callable(getattr(value, "label", None)):
        return value.label(lang)
    return value


def render(template: str, params: dict[str, Any], translate: Translate, lang: str) -> str:
    """``template`` translated and filled in; a translation with broken placeholders falls
    back to the English template rather than failing the page."""
    values = {k: _shown(v, translate, lang) for k, v in params.items()}
    try:
        return translate(template).format(**values)
    except (KeyError, IndexError, ValueError):
        return template.format(**values)


_KEPT: list[tuple[str, re.Pattern[str]]] = []


def kept(template: str) -> str:
    """Declare the template of a text the stores keep, so ``recognise`` can read it back."""
    pattern = "".join(
        re.escape(literal) + (f"(?P<{name}>.+?)" if name is not None else "")
        for literal, name, _, _ in string.Formatter().parse(template)
    )
    _KEPT.append((template, re.compile(pattern + r"\Z", re.DOTALL)))
    return template


def recognise(text: str) -> str:
    """A stored text as the kept Message it was written from, or the text itself (a note
    somebody typed)."""
    if isinstance(text, Message) or not isinstance(text, str):
        return text
    for template, pattern in _KEPT:
        if match := pattern.match(text):
            return Message(template, **match.groupdict())
    return text


# Notes a version or an audit entry keeps.
IMPORT_NOTE = kept("import of {name}")
RESTORED_NOTE = kept("restored from version {version}")
SAMPLE_NOTE = kept("Illustrative data, randomly generated: not official boundaries or records.")
