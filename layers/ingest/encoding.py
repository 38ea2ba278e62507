"""Vietnamese text encodings of shapefile attributes: decode, encode and detect.

Older agency shapefiles hold their text in legacy encodings (TCVN3/ABC, VNI-Windows,
Windows-1258 with combining tone marks) or in UTF-8, and the `.cpg` that would say which
is often missing or wrong. Python has no TCVN3 or VNI codec, so the tables are here.
Every decoded string comes out NFC, so names compare and index the same whatever their
source.

Read the DBF with ``encoding="latin1"`` and ``.encode("latin-1")`` each value to get the raw
bytes back, then hand them to :func:`detect_encoding` and :func:`decode`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from layers.errors import InvalidUpload
from layers.messages import Message

ENCODINGS: tuple[str, ...] = ("utf-8", "cp1258", "tcvn3", "vni")
LABELS: dict[str, str] = {
    "utf-8": "UTF-8",
    "cp1258": "Windows-1258",
    "tcvn3": "TCVN3 (ABC)",
    "vni": "VNI-Windows",
}
# Files merged from two agencies: each value is UTF-8 when it is valid UTF-8, else legacy.
MIXED: tuple[str, ...] = tuple(f"utf-8+{e}" for e in ENCODINGS[1:])
LABELS |= {m: f"UTF-8 + {LABELS[m[6:]]}" for m in MIXED}

# Tone marks in the order used by the tables below: none, huyền, sắc, ngã, hỏi, nặng.
_TONES = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
_VOWELS = "aăâeêioôơuưy"
_NFC = unicodedata.normalize

# --- TCVN3 -----------------------------------------------------------------------------
# Bytes 0x80-0xFF of TCVN 5712:1993. TCVN3 (ABC, the .VnTime fonts) uses the lowercase
# letters, the 7 capitals Ă Â Ê Ô Ơ Ư Đ (0xA1-0xA7) and the combining tones 0xB0-0xB4;
# the toned capitals in the other slots (VN1) are decoded too since they cost nothing.
_TCVN_HIGH = (
    "ÀẢÃÁẠẶẬÈẺẼÉẸỆÌỈĨ"
    "ÍỊÒỎÕÓỌỘỜỞỠỚỢÙỦŨ"
    "\xa0ĂÂÊÔƠƯĐăâêôơưđẰ"
    "\u0300\u0309\u0303\u0301\u0323àảãáạẲằẳẵắẴ"
    "ẮẦẨẪẤỀặầẩẫấậèỂẻẽ"
    "éẹềểễếệìỉỄẾỒĩíịò"
    "Ổỏõóọồổỗốộờởỡớợù"
    "ỖủũúụừửữứựỳỷỹýỵỐ"
)
# VN1 also puts the toned capitals that did not fit above in the C0 control range.
_TCVN_LOW = dict(
    zip(b"\x01\x02\x04\x05\x06\x11\x12\x13\x14\x15\x16\x17", "ÚỤỪỬỮỨỰỲỶỸÝỴ", strict=True)
)
_TCVN_DECODE = {**{i: chr(i) for i in range(128)}, **_TCVN_LOW}
_TCVN_DECODE.update({0x80 + i: ch for i, ch in enumerate(_TCVN_HIGH)})
_TCVN_TRANS = str.maketrans({chr(b): ch for b, ch in _TCVN_DECODE.items()})
# ABC fonts have no toned capitals: text typed in a normal font stores the lowercase code.
_TCVN_ENCODE = {
    ch: bytes([b]) for b, ch in _TCVN_DECODE.items() if b >= 0xA0 and ch.islower()
} | {ch: bytes([0xA1 + i]) for i, ch in enumerate("ĂÂÊÔƠƯĐ")}


def _tcvn_encode_char(ch: str) -> bytes:
    if ch.isascii():
        return ch.encode("ascii")
    code = _TCVN_ENCODE.get(ch) or _TCVN_ENCODE.get(ch.lower())
    if code is None:
        raise ValueError(f"{ch!r} has no TCVN3 code")
    return code


# --- VNI-Windows ------------------------------------------------------------------------
# VNI writes a base letter followed by a mark byte (shown here as its Latin-1 character),
# except for ơ ư đ and the toned i / ỵ, which have single bytes.
_VNI_TONE = ("", "ø", "ù", "õ", "û", "ï")
_VNI_CIRCUMFLEX = ("â", "à", "á", "ã", "å", "ä")
_VNI_BREVE = ("ê", "è", "é", "ü", "ú", "ë")
_VNI_I = ("i", "ì", "í", "ó", "æ", "ò")


def _vni_lower(base: str, tone: int) -> str:
    """VNI spelling (as Latin-1 text) of one lowercase Vietnamese vowel or đ."""
    if base == "đ":
        return "ñ"
    if base == "i":
        return _VNI_I[tone]
    if base == "y" and tone == 5:
        return "î"
    if base in "âêô":
        return _NFC("NFD", base)[0] + _VNI_CIRCUMFLEX[tone]
    if base == "ă":
        return "a" + _VNI_BREVE[tone]
    return {"ơ": "ô", "ư": "ö"}.get(base, base) + _VNI_TONE[tone]


_VNI_ENCODE = {
    _NFC("NFC", base + _TONES[tone]): _vni_lower(base, tone)
    for base in _VOWELS + "đ"
    for tone in range(1 if base == "đ" else 6)
}
_VNI_ENCODE |= {ch.upper(): seq.upper() for ch, seq in _VNI_ENCODE.items()}
_VNI_DECODE = {seq: ch for ch, seq in _VNI_ENCODE.items() if not seq.isascii()}
# Tolerate a mark byte whose case does not match its letter's (case follows the letter).
_VNI_DECODE |= {s[0] + s[1].swapcase(): ch for s, ch in list(_VNI_DECODE.items()) if len(s) == 2}
_VNI_DECODE |= {"yï": "ỵ", "YÏ": "Ỵ"}
_VNI_PATTERN = re.compile(
    "|".join(re.escape(s) for s in sorted(_VNI_DECODE, key=len, reverse=True)) + "|[\x80-\xff]"
)


def _vni_decode(raw: bytes, stray: str | None) -> str:
    """Decode VNI bytes; a byte that is no VNI letter becomes ``stray`` (None: its Latin-1)."""
    table = _VNI_DECODE

    def repl(m: re.Match[str]) -> str:
        s = m.group()
        return table.get(s) or (s if stray is None else stray)

    return _VNI_PATTERN.sub(repl, raw.decode("latin-1"))


# --- Windows-1258 -------------------------------------------------------------------------


def _cp1258_encode_char(ch: str) -> bytes:
    """Letter with precomposed base (â ơ ư…) and a separate tone mark, as Windows writes it."""
    parts = _NFC("NFD", ch)
    tones = "".join(c for c in parts if c in _TONES[1:])
    base = _NFC("NFC", "".join(c for c in parts if c not in _TONES[1:]))
    return (base + tones).encode("cp1258")


def _utf8_text(raw: bytes) -> str:
    """UTF-8, dropping a multi-byte character cut off at the end (DBF fields truncate bytes)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.end == len(raw):
            return raw[: exc.start].decode("utf-8")
        raise


def _check(encoding: str) -> str:
    name = encoding.strip().lower()
    if name not in ENCODINGS and name not in MIXED:
        raise InvalidUpload(Message("Unknown text encoding {encoding!r}; expected one of: "
                                    "{known}.", encoding=encoding, known=list(ENCODINGS)))
    return name


def decode(raw: bytes, encoding: str) -> str:
    """Decode attribute bytes to NFC text.

    UTF-8 and Windows-1258 raise :class:`InvalidUpload` on bytes they cannot decode; TCVN3 and
    VNI never do (every byte shows a glyph in their fonts: unassigned VNI bytes stay Latin-1).
    """
    name = _check(encoding)
    if name in MIXED:
        return _decode_mixed(raw, name[6:])
    try:
        if name == "utf-8":
            text = _utf8_text(raw)
        elif name == "cp1258":
            text = raw.decode("cp1258")
        elif name == "tcvn3":
            text = raw.decode("latin-1").translate(_TCVN_TRANS)
        else:
            text = _vni_decode(raw, None)
    except UnicodeDecodeError as exc:
        raise InvalidUpload(Message(
            "Text is not valid {encoding}: byte 0x{byte:02x} at position {position} cannot be "
            "decoded.", encoding=LABELS[name], byte=raw[exc.start], position=exc.start)
        ) from exc
    return _NFC("NFC", text)


def _decode_mixed(raw: bytes, legacy: str) -> str:
    """One value of a merged file: valid UTF-8 is UTF-8 (legacy Vietnamese bytes almost never
    are), anything else is ``legacy``, unless only a UTF-8 character cut at the end fails."""
    try:
        return _NFC("NFC", raw.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    try:
        return decode(raw, legacy)
    except InvalidUpload:
        try:
            return _NFC("NFC", _utf8_text(raw))
        except UnicodeDecodeError:
            raise InvalidUpload(Message(
                "Text is neither UTF-8 nor {encoding}: {text!r} cannot be decoded.",
                encoding=LABELS[legacy], text=raw.decode("latin-1"))) from None


def encode(text: str, encoding: str) -> bytes:
    """Encode text the way legacy tools wrote it (for tests, fixtures and benchmarks).

    TCVN3 has no toned capitals, so "Ồ" is written as the code of "ồ", like ABC fonts do;
    Windows-1258 separates tone marks from their letters. Raises ValueError for a character
    the encoding cannot hold or an unknown encoding name.
    """
    try:
        name = _check(encoding)
    except InvalidUpload as exc:
        raise ValueError(exc.message) from None
    if name in MIXED:
        raise ValueError(f"{encoding!r} is a way of reading merged files, not of writing")
    text = _NFC("NFC", text)
    if name == "utf-8":
        return text.encode("utf-8")
    if name == "cp1258":
        return b"".join(_cp1258_encode_char(ch) for ch in text)
    if name == "tcvn3":
        return b"".join(_tcvn_encode_char(ch) for ch in text)
    return "".join(_VNI_ENCODE.get(ch, ch) for ch in text).encode("latin-1")


_CPG_NAMES = {
    "utf-8": ("UTF8", "65001", "UTF8BOM"),
    "cp1258": ("1258", "CP1258", "WINDOWS1258", "ANSI1258", "WIN1258", "MS1258"),
    "tcvn3": ("TCVN3", "TCVN", "TCVN5712", "TCVN57121", "ABC"),
    "vni": ("VNI", "VNIWINDOWS", "VNIWIN"),
}
_CPG = {alias: name for name, aliases in _CPG_NAMES.items() for alias in aliases}


def encoding_from_cpg(text: str) -> str | None:
    """Map a `.cpg` label to a name in :data:`ENCODINGS`, or None when it does not tell.

    Latin-1 / Windows-1252 labels ("1252", "ISO-8859-1", "ANSI 1252"…) give None on purpose:
    GIS tools write them by default for 8-bit text, and on Vietnamese data that text is
    usually TCVN3 or VNI, so the caller should run :func:`detect_encoding` instead.
    """
    lines = text.lstrip("\ufeff").strip().splitlines()
    key = re.sub(r"[\s_.\-]", "", lines[0]).upper() if lines else ""
    return _CPG.get(key)


# --- Detection ------------------------------------------------------------------------------

_MARKED = "ăâêôơư"  # vowels with their own diacritic: the tone goes on (the last of) them
_ONSETS = frozenset(("ch", "kh", "nh", "ph", "th", "tr", "gi", "qu", *"bdđhlmnprstvx"))
# Vowel group -> finals it takes ("-": none). "k" is for minority names (Đắk, Lắk).
_OPEN_ONLY = (
    "y ai ao au ay âu ây eo êu ia iu oi ôi ơi ưa ưi ưu ui ua uơ iêu yêu oai oay oao oeo uây "
    "uôi ươi ươu uya uyu"
)
_RIMES = {
    v: frozenset(f.strip("-") for f in finals.split())
    for v, finals in (
        dict.fromkeys(_OPEN_ONLY.split(), "-")
        | {
            "a": "- c ch m n ng nh p t k", "ă": "c m n ng p t k", "â": "c m n ng p t",
            "e": "- c m n ng p t", "ê": "- ch m n nh p t", "i": "- ch m n nh p t",
            "o": "- c m n ng p t", "ô": "- c m n ng p t", "ơ": "- m n p t",
            "u": "- c m n ng p t", "ư": "- c m n ng t", "oa": "- c ch m n ng nh p t",
            "oă": "c m n ng t", "oe": "- n t", "oo": "ng", "uâ": "n ng t", "uê": "- ch n nh",
            "uy": "- ch n nh p t", "uô": "c m n ng t", "ươ": "c m n ng p t",
            "iê": "c m n ng p t", "yê": "c m n ng p t", "uyê": "n t",
        }
    ).items()
}
_QUY = frozenset(("", "ch", "nh", "n", "t"))  # quy, quých, quỳnh, quyn, quýt
_SHAPE = re.compile("([bcdđghklmnpqrstvx]*)([aăâeêioôơuưy]+)(ng|nh|ch|[cmnptk])?")
_CONSONANTS = frozenset("bcdđghklmnpqrstvx")
_SPLIT = {_NFC("NFC", v + t): (v, i) for v in _VOWELS for i, t in enumerate(_TONES)}
_WORD_BREAK = re.compile(r"[\x00-\x40\x5b-\x60\x7b-\x7f]+")  # ASCII non-letters
_MAX_SAMPLES = 2000


def _case_ok(word: str, tcvn: bool) -> bool:
    """lower, Title or UPPER; TCVN3 text may keep toned vowels lowercase in UPPER words."""
    if word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower()):
        return True
    if not tcvn:
        return False
    rest = "".join(c for c in word if not (c.islower() and _SPLIT.get(c, ("", 0))[1]))
    return rest.isupper()


def _onset_ok(onset: str, vowels: str) -> bool:
    """The c/k, g/gh and ng/ngh spelling rules, which mis-decoded text tends to break."""
    first = vowels[0]
    rule = {"k": "eêiy", "gh": "eêi", "ngh": "eêi"}.get(onset)
    if rule:
        return first in rule
    banned = {"c": "eêiy", "ng": "eêi", "g": "eê", "qu": "ou"}.get(onset)
    if banned:
        return first not in banned
    return not onset or onset in _ONSETS


def _rime_ok(onset: str, vowels: str, coda: str, tone_at: int | None) -> bool:
    """Vowel group and final fit, and the tone mark sits where Vietnamese spelling puts it."""
    finals = _QUY if onset == "qu" and vowels == "y" else _RIMES.get(vowels, frozenset())
    if coda not in finals or (vowels == "uơ" and onset not in ("h", "th", "kh")):
        return False
    if tone_at is None:
        return True
    marked = [i for i, c in enumerate(vowels) if c in _MARKED]
    if marked:
        return tone_at == marked[-1]
    if len(vowels) == 1 or coda:
        return tone_at == len(vowels) - 1
    if vowels in ("oa", "oe", "uy"):  # hòa and hoà are both in use
        return True
    return tone_at == (1 if len(vowels) == 3 else 0)


@lru_cache(maxsize=65536)
def _is_vietnamese(word: str, tcvn: bool = False) -> bool:
    """True when ``word`` is a plausible Vietnamese syllable (or a consonant abbreviation).

    Every letter must be from the Vietnamese alphabet, in a sane letter case, as onset +
    vowel group + final with at most one tone mark, placed where the spelling puts it; a
    syllable ending in c/ch/p/t carries sắc or nặng. Leftover combining marks, symbols and
    replacement characters all fail. ``tcvn`` allows TCVN3's lowercase toned capitals.
    """
    if not _case_ok(word, tcvn):
        return False
    bases: list[str] = []
    tone = 0
    tone_at = 0
    for ch in word.lower():
        if ch in _CONSONANTS:
            bases.append(ch)
            continue
        split = _SPLIT.get(ch)
        if split is None:
            return False
        if split[1]:
            if tone:
                return False
            tone, tone_at = split[1], len(bases)
        bases.append(split[0])
    plain = "".join(bases)
    if all(c in _CONSONANTS for c in plain):
        return word.isupper() and len(plain) <= 5  # abbreviations: "ĐT", "QĐ"
    shape = _SHAPE.fullmatch(plain)
    if shape is None:
        return False
    onset, vowels, coda = shape.group(1), shape.group(2), shape.group(3) or ""
    if coda in ("c", "ch", "p", "t") and tone not in (2, 5):
        return False
    splits = [(onset, vowels, tone_at - len(onset))]
    if onset in ("g", "q") and len(vowels) > 1 and vowels[0] == "iu"[onset == "q"]:
        splits.append((onset + vowels[0], vowels[1:], tone_at - len(onset) - 1))
    return any(
        _onset_ok(on, v) and _rime_ok(on, v, coda, at if tone else None) for on, v, at in splits
    )


def _score_decoder(name: str) -> Callable[[bytes], str]:
    """Decoder used for scoring: undecodable bytes become U+FFFD so their word fails."""
    if name == "utf-8":
        return lambda raw: _NFC("NFC", raw.decode("utf-8", "replace"))
    if name == "cp1258":
        return lambda raw: _NFC("NFC", raw.decode("cp1258", "replace"))
    if name == "tcvn3":
        return lambda raw: _NFC("NFC", raw.decode("latin-1").translate(_TCVN_TRANS))
    return lambda raw: _vni_decode(raw, "\ufffd")


@dataclass(frozen=True)
class EncodingGuess:
    """The detected encoding, how sure, and why, in words a planner can check."""

    encoding: str
    confidence: float
    evidence: str  # a Message
    scores: dict[str, float]
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # (Vietnamese, accented)


def _utf8_fails(raw: bytes, width: int) -> bool | None:
    """Whether ``raw`` is invalid UTF-8; None when it only looks cut off at the field width.

    A legacy string ending in a toned letter often looks like UTF-8 cut mid-character, so
    that only counts as a truncated UTF-8 value when the value is as long as the longest.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.reason == "unexpected end of data" and exc.end == len(raw)
        return None if cut and len(raw) >= width else True
    return False


def detect_encoding(samples: Iterable[bytes]) -> EncodingGuess:
    """Guess the encoding of a column's raw values by how Vietnamese each reading looks.

    Plain ASCII reads the same everywhere (UTF-8, certain). Text that is all valid UTF-8 is
    UTF-8. Otherwise each legacy encoding is scored by the share of accented words that
    decode to valid Vietnamese syllables. At most 2 000 distinct accented values are read.
    """
    total = 0
    distinct: dict[bytes, None] = {}
    for raw in samples:
        total += 1
        if not raw.isascii():
            distinct[raw] = None
    if not distinct:
        what = Message("All {n} strings are plain ASCII, which reads the same in every "
                       "encoding.", n=total) if total else Message(
            "There is no text, which reads the same in every encoding.")
        return EncodingGuess("utf-8", 1.0, what, dict.fromkeys(ENCODINGS, 1.0))
    values = list(distinct)
    if len(values) > _MAX_SAMPLES:
        values = values[:: -(-len(values) // _MAX_SAMPLES)]

    counts: dict[str, tuple[int, int]] = {}  # (Vietnamese words, accented words)
    for name in ENCODINGS:
        decoder = _score_decoder(name)
        valid = words = 0
        for raw in values:
            for word in _WORD_BREAK.split(decoder(raw)):
                if word and not word.isascii():
                    words += 1
                    valid += _is_vietnamese(word, name == "tcvn3")
        counts[name] = (valid, words)
    scores = {name: v / w if w else 0.0 for name, (v, w) in counts.items()}

    n = len(values)
    width = max(map(len, values))
    utf8 = [_utf8_fails(raw, width) for raw in values]
    utf8_bad = utf8.count(True)
    legacy = sorted(ENCODINGS[1:], key=lambda e: (-scores[e], ("tcvn3", "vni", "cp1258").index(e)))
    best, second = legacy[0], legacy[1]

    def count(name: str) -> Message:
        valid, words = counts[name]
        return Message("{valid} of {words}", valid=valid, words=words)

    if utf8_bad == 0 and False in utf8 and not (scores[best] >= 0.9 and scores["utf-8"] < 0.4):
        return EncodingGuess(
            "utf-8", round(0.99 if n > 1 else 0.9, 3),
            Message("All {n} strings with accented letters are valid UTF-8 ({count} accented "
                    "words read as Vietnamese).", n=n, count=count("utf-8")),
            scores, counts,
        )
    if scores["utf-8"] > scores[best]:
        best, second = "utf-8", best
    top, runner = scores[best], scores[second]
    # Sure once the winner reads a few more words as Vietnamese than the runner-up does.
    confidence = top * (1 - math.exp(-(top - runner) * counts[best][1] / 2))
    compared = {"count": count(best), "best": LABELS[best], "second": LABELS[second],
                "second_count": count(second)}
    if best == "utf-8":
        evidence = Message("{count} accented words read as valid Vietnamese in {best}; next "
                           "best {second}: {second_count}.", **compared)
    else:
        evidence = Message("{count} accented words read as valid Vietnamese in {best}; next "
                           "best {second}: {second_count}; UTF-8 fails on {bad} of {n} strings.",
                           **compared, bad=utf8_bad, n=n)
    return EncodingGuess(best, round(confidence, 3), evidence, scores, counts)


# How much better (share of accented words read as Vietnamese) another encoding must read
# than the declared one before the declaration is overruled.
_FAR_BETTER = 0.3


def overruled_declaration(guess: EncodingGuess, declared: str) -> Message | None:
    """Why the text is not read as a `.cpg` declares, or None when the declaration stands.

    A `.cpg` of 1258 over VNI bytes decodes without error into nonsense; the detector's own
    scores show it: the declared reading has few valid Vietnamese words, another has many.
    """
    best = guess.encoding
    if best == declared or declared not in guess.counts or guess.confidence < 0.8:
        return None
    if guess.scores[best] - guess.scores[declared] < _FAR_BETTER:
        return None
    (valid, words), (declared_valid, _) = guess.counts[best], guess.counts[declared]
    return Message(
        "The .cpg declares {declared}, but the text was read as {used}: {valid} of {words} "
        "accented words are valid Vietnamese in {used}, against {declared_valid} in "
        "{declared}. Choose another encoding if the names still look wrong.",
        declared=LABELS[declared], used=LABELS[best], valid=valid, words=words,
        declared_valid=declared_valid)


def detect_mixed(values: Iterable[bytes]) -> tuple[str, Message] | None:
    """The mixed reading (``utf-8+<legacy>``) and a warning with the counts, when some values
    are UTF-8 and the others a legacy encoding, as in two agencies' files merged into one.

    Each group must read as Vietnamese in its own encoding (scored by
    :func:`detect_encoding`), so a legacy file with a stray UTF-8-looking value is not split.
    """
    utf8: list[bytes] = []
    legacy: list[bytes] = []
    for raw in values:
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            legacy.append(raw)
        else:
            utf8.append(raw)
    if not utf8 or not legacy:
        return None
    as_utf8, as_legacy = detect_encoding(utf8), detect_encoding(legacy)
    if as_utf8.encoding != "utf-8" or as_legacy.encoding == "utf-8":
        return None
    if as_utf8.scores["utf-8"] < 0.5 or as_legacy.confidence < 0.5:
        return None
    name = f"utf-8+{as_legacy.encoding}"
    return name, Message(
        "The file mixes encodings, as when two agencies' files are merged: {utf8} strings are "
        "UTF-8 and {legacy} are {encoding}; each value was read in its own encoding.",
        utf8=len(utf8), legacy=len(legacy), encoding=LABELS[as_legacy.encoding])
