"""Text normalisation: every string the core stores is NFC Unicode.

Vietnamese can be written precomposed (NFC) or with combining tone marks (NFD, as
Windows-1258 and many Mac tools produce). Both look the same but compare and index
differently, so everything is normalised on the way in.
"""

import unicodedata


def nfc(value: str) -> str:
    """Return ``value`` in NFC with surrounding whitespace removed."""
    return unicodedata.normalize("NFC", value).strip()
