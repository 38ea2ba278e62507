"""Text normalisation and limits: every string the core stores is NFC Unicode, of bounded size.

Vietnamese can be written precomposed (NFC) or with combining tone marks (NFD, as
Windows-1258 and many Mac tools produce). Both look the same but compare and index
differently, so everything is normalised on the way in. Bidirectional control characters
(such as U+202E RIGHT-TO-LEFT OVERRIDE) are removed there too: no Vietnamese text needs them,
and they make a name read backwards (``exe.fdp`` shown as ``pdf.exe``).
"""

import re
import unicodedata

from .errors import InvalidFeature
from .messages import Message

# Unicode's Bidi_Control characters: ALM, LRM, RLM, the embeddings/overrides and isolates.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# Longest texts the core stores, in characters: a layer or map title, a feature's name,
# any other text (descriptions, findings, notes, a generic layer's text columns).
TITLE_MAX = 200
NAME_MAX = 300
TEXT_MAX = 10_000


def nfc(value: str) -> str:
    """Return ``value`` in NFC without bidi controls or surrounding whitespace."""
    return BIDI_CONTROLS.sub("", unicodedata.normalize("NFC", value)).strip()


def checked_text(value: str, what: str, limit: int = TEXT_MAX) -> str:
    """``value`` normalised by ``nfc``; refuses one longer than ``limit`` characters."""
    text = nfc(value)
    if len(text) > limit:
        raise InvalidFeature(Message("{what}: at most {limit} characters (this text has "
                                     "{length})", what=what, limit=limit, length=len(text)))
    return text
