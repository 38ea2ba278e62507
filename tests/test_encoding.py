"""Vietnamese legacy encodings: tables, round trips, cp1258 normalisation and detection."""

import random
import re
import shutil
import subprocess
import time
import unicodedata

import pytest

from layers.errors import InvalidUpload
from layers.ingest.encoding import (
    ENCODINGS,
    LABELS,
    MIXED,
    EncodingGuess,
    decode,
    detect_encoding,
    encode,
    encoding_from_cpg,
)

TONES = ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
LOWER = [unicodedata.normalize("NFC", v + t) for v in "aăâeêioôơuưy" for t in TONES] + ["đ"]
LETTERS = LOWER + [c.upper() for c in LOWER]  # 72 + 1 lowercase, same again uppercase
CONSONANTS = "bcdghklmnpqrstvx"

NAMES = [
    "Phường Tân Phú", "Phường Tân Bình", "Phường Tân Đồng", "Phường Tân Xuân",
    "Phường Tân Thiện", "Phường Tiến Thành", "Xã Tiến Hưng", "Xã Tân Thành",
    "Chùa Phước Huệ", "Bãi rác tự phát đường Phú Riềng Đỏ", "Điểm tập kết rác",
    "Ô nhiễm nguồn nước", "Cơ sở chế biến mủ cao su Đồng Phú", "PHƯỜNG TÂN PHÚ",
    "ĐỒNG XOÀI", "XÃ TIẾN HƯNG", "Hòa", "Khu phố Phú Lộc", "Ấp Mỹ", "Suối Thủy",
    "Nhà thờ Giáo xứ Đồng Xoài", "Trường THCS Tân Phú", "Hồ Suối Cam", "Kênh thoát nước",
    "Trạm y tế xã Tiến Hưng", "Quốc lộ 14", "Đường Hùng Vương", "Lò mổ gia súc",
    "Khu công nghiệp Đồng Xoài I", "Thánh thất Cao Đài", "Nhà văn hóa khu phố 5",
    "Cụm dân cư Thuận Phú", "Mương nước thải", "Bãi chôn lấp chất thải rắn",
    "Điểm nóng ô nhiễm ĐT741", "Nguyễn Huỳnh Quỳnh", "Đắk Ơ", "Ngã ba Bình Phước",
]
ENDING_IN_TONE = [
    "Hòa", "Hoà", "Lộc", "Mỹ", "Thủy", "Thuỷ", "Phú", "Khu phố Tân Hoà", "Ấp Mỹ Lộc", "Suối Thủy",
]
WARDS = ["Phường Tân Phú", "Phường Tân Bình", "Xã Tiến Hưng", "Phường Tiến Thành"]


def tcvn3_view(text: str) -> str:
    """What TCVN3 (ABC) can hold: toned capitals become their lowercase letters."""
    text = unicodedata.normalize("NFC", text)
    return "".join(
        c.lower() if c.isupper() and not c.isascii() and c not in "ĂÂÊÔƠƯĐ" else c for c in text
    )


def expected(text: str, encoding: str) -> str:
    nfc = unicodedata.normalize("NFC", text)
    return tcvn3_view(nfc) if encoding == "tcvn3" else nfc


# --- tables and round trips ------------------------------------------------------------------


def test_api_names():
    assert ENCODINGS == ("utf-8", "cp1258", "tcvn3", "vni")
    assert set(LABELS) == set(ENCODINGS) | set(MIXED)
    assert LABELS["utf-8+cp1258"] == "UTF-8 + Windows-1258"
    assert LABELS["tcvn3"] == "TCVN3 (ABC)"
    assert len(set(LETTERS)) == 146  # 134 non-ASCII letters + a e i o u y and capitals


def test_dong_xoai_test_vectors():
    tcvn3 = bytes.fromhex("a7e56e6720586fb569")
    vni = bytes.fromhex("d16fe06e6720586f61f869")
    assert vni.decode("latin-1") == "Ñoàng Xoaøi"
    assert decode(tcvn3, "tcvn3") == "Đồng Xoài"
    assert decode(vni, "vni") == "Đồng Xoài"
    assert encode("Đồng Xoài", "tcvn3") == tcvn3
    assert encode("Đồng Xoài", "vni") == vni
    assert encode("Đồng Xoài", "cp1258") == bytes.fromhex("d0f4cc6e6720586f61cc69")
    assert encode("Đồng Xoài", "utf-8") == "Đồng Xoài".encode()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_letter_round_trips_alone_and_in_every_position(encoding):
    for letter in LETTERS:
        want = expected(letter, encoding)
        for text in (letter, "x" + letter, letter + "ng", "Ng" + letter, f"{letter} {letter}"):
            raw = encode(text, encoding)
            assert decode(raw, encoding) == expected(text, encoding), (text, raw)
        assert decode(encode(letter, encoding), encoding) == want


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_random_strings_of_vietnamese_letters_round_trip(encoding):
    rng = random.Random(1258)
    alphabet = LETTERS + list(CONSONANTS + CONSONANTS.upper() + "  ,.-0123456789")
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        decoded = decode(encode(text, encoding), encoding)
        assert decoded == expected(text, encoding), (text, encode(text, encoding))
        assert unicodedata.is_normalized("NFC", decoded)


def test_encoders_are_injective_on_letters():
    for encoding in ("utf-8", "cp1258", "vni"):
        codes = {encode(letter, encoding) for letter in LETTERS}
        assert len(codes) == len(LETTERS), encoding
    assert len({encode(letter, "tcvn3") for letter in LOWER}) == len(LOWER)


def test_vni_spellings():
    as_latin1 = {c: encode(c, "vni").decode("latin-1") for c in "ồàđĐơƯỵỴịĨỉắẶữ"}
    assert as_latin1 == {
        "ồ": "oà", "à": "aø", "đ": "ñ", "Đ": "Ñ", "ơ": "ô", "Ư": "Ö", "ỵ": "î", "Ỵ": "Î",
        "ị": "ò", "Ĩ": "Ó", "ỉ": "æ", "ắ": "aé", "Ặ": "AË", "ữ": "öõ",
    }
    # Every VNI letter is one byte, or an ASCII letter followed by a mark byte.
    for letter in LETTERS:
        raw = encode(letter, "vni")
        assert len(raw) == 1 or (len(raw) == 2 and raw[1] >= 0xC0), letter
    # A mark byte in the wrong case still binds to its letter.
    assert decode("Hoaø OÀ".encode("latin-1"), "vni") == "Hoà Ồ"
    assert decode("AØ aÙ".encode("latin-1"), "vni") == "À á"


def test_vni_strings_ending_in_a_mark_byte():
    for name in ("Hoà", "Mỹ", "Thuỷ", "Phú", "Tân Hoà", "HOÀ", "Lộ"):
        raw = encode(name, "vni")
        assert raw[-1] >= 0xC0, raw
        assert decode(raw, "vni") == name


def test_tcvn3_only_has_seven_capitals_so_toned_capitals_come_back_lowercase():
    assert encode("ĂÂÊÔƠƯĐ", "tcvn3") == bytes(range(0xA1, 0xA8))
    assert encode("ĐỒNG XOÀI", "tcvn3") == bytes.fromhex("a7e54e4720584fb549")
    assert decode(encode("ĐỒNG XOÀI", "tcvn3"), "tcvn3") == "ĐồNG XOàI"
    assert decode(encode("PHƯỜNG TÂN PHÚ", "tcvn3"), "tcvn3") == "PHƯờNG TÂN PHú"


def test_tcvn3_decodes_combining_tones_and_vn1_capitals():
    assert decode(b"Ho\xb5 a\xb0 e\xb3 \xa9\xb4", "tcvn3") == "Hoà à é ậ"
    assert decode(b"\x80 \x9f \xff \x16", "tcvn3") == "À Ũ Ố Ý"


@pytest.mark.skipif(shutil.which("iconv") is None, reason="needs iconv")
def test_tcvn3_table_matches_glibc_tcvn5712_1():
    vector = bytes.fromhex("a7e56e6720586fb569")
    command = ["iconv", "-f", "TCVN5712-1", "-t", "UTF-8"]
    done = subprocess.run(command, input=vector, capture_output=True)
    if done.returncode != 0 or done.stdout.decode() != "Đồng Xoài":
        pytest.skip("iconv has no TCVN5712-1")
    # glibc composes a letter with a following combining tone: compare byte by byte.
    for byte in range(1, 256):
        one = subprocess.run(command, input=bytes([byte]), capture_output=True).stdout.decode()
        assert decode(bytes([byte]), "tcvn3") == unicodedata.normalize("NFC", one), hex(byte)


def test_cp1258_separates_tone_marks_and_decodes_to_nfc():
    assert encode("Hòa", "cp1258") == b"Ho\xcca"
    assert encode("Mỹ", "cp1258") == b"My\xde"  # ends in a combining tilde
    assert encode("Ặ", "cp1258") == b"\xc3\xf2"  # Ă precomposed + dot below
    assert encode("Ư ư Ơ ơ Đ đ", "cp1258") == b"\xdd \xfd \xd5 \xf5 \xd0 \xf0"
    for raw, want in [
        (b"Ho\xcca", "Hòa"),
        (b"My\xde", "Mỹ"),
        (b"Thu\xd2y", "Thủy"),
        (b"Xo\xe0i", "Xoài"),  # precomposed à, as some tools write it
        (b"L\xf4\xf2c", "Lộc"),
        (b"Ph\xfd\xf5\xccng", "Phường"),
    ]:
        text = decode(raw, "cp1258")
        assert unicodedata.is_normalized("NFC", text)
        assert text == unicodedata.normalize("NFC", want)
    raw = b"Ph\xfd\xf5\xccng"
    assert raw.decode("cp1258") != decode(raw, "cp1258")  # Python alone leaves it decomposed


def test_utf8_decodes_to_nfc_and_forgives_a_cut_last_character():
    assert decode(unicodedata.normalize("NFD", "Đồng Xoài").encode(), "utf-8") == "Đồng Xoài"
    assert decode("Ấp Mỹ".encode()[:-1], "utf-8") == "Ấp M"


def test_decode_errors():
    with pytest.raises(InvalidUpload, match="Unknown text encoding"):
        decode(b"abc", "latin-9")
    with pytest.raises(InvalidUpload, match="UTF-8"):
        decode(b"\xa7\xe5ng", "utf-8")
    with pytest.raises(InvalidUpload, match="Windows-1258"):
        decode(b"a\x81b", "cp1258")
    every_byte = bytes(range(256))
    assert len(decode(every_byte, "tcvn3")) > 0
    assert len(decode(every_byte, "vni")) > 0
    assert decode(b"abc", " TCVN3 ") == "abc"


def test_encode_errors():
    with pytest.raises(ValueError, match="Unknown"):
        encode("abc", "viscii")
    with pytest.raises(ValueError):
        encode("中", "tcvn3")
    with pytest.raises(ValueError):
        encode("中", "cp1258")


@pytest.mark.parametrize(
    ("cpg", "name"),
    [
        ("UTF-8", "utf-8"), ("utf8", "utf-8"), ("65001", "utf-8"), ("\ufeffUTF-8\r\n", "utf-8"),
        ("1258", "cp1258"), ("CP1258", "cp1258"), ("windows-1258", "cp1258"),
        ("ANSI 1258", "cp1258"), ("TCVN3", "tcvn3"), ("VNI", "vni"),
        ("ISO-8859-1", None), ("1252", None), ("LATIN1", None), ("ANSI 1252", None),
        ("", None), ("something", None),
    ],
)
def test_encoding_from_cpg(cpg, name):
    assert encoding_from_cpg(cpg) == name


# --- detection -------------------------------------------------------------------------------


def test_plain_ascii_is_utf8_for_certain():
    guess = detect_encoding([b"Khu pho 3", b"Ap 1", b""])
    assert guess == EncodingGuess(guess.encoding, 1.0, guess.evidence, guess.scores)
    assert (guess.encoding, guess.confidence) == ("utf-8", 1.0)
    assert "plain ASCII" in guess.evidence
    assert detect_encoding([]).encoding == "utf-8"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_detects_each_encoding_on_realistic_names(encoding):
    raw = [encode(name, encoding) for name in NAMES]
    guess = detect_encoding(raw)
    assert guess.encoding == encoding, guess
    assert guess.confidence >= 0.8, guess
    assert set(guess.scores) == set(ENCODINGS)
    assert all(0.0 <= s <= 1.0 for s in guess.scores.values())
    assert LABELS[encoding] in guess.evidence or encoding == "utf-8"
    for name, value in zip(NAMES, raw, strict=True):
        assert decode(value, guess.encoding) == expected(name, encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_detects_a_handful_of_ward_names(encoding):
    guess = detect_encoding(encode(name, encoding) for name in WARDS)
    assert guess.encoding == encoding, guess
    assert guess.confidence >= 0.8, guess


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_detects_single_names_including_ones_ending_in_a_toned_letter(encoding):
    for name in NAMES + ENDING_IN_TONE:
        guess = detect_encoding([encode(name, encoding)])
        assert guess.encoding == encoding, (name, guess)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_detects_names_ending_in_toned_letters(encoding):
    guess = detect_encoding(encode(name, encoding) for name in ENDING_IN_TONE)
    assert guess.encoding == encoding, guess
    assert guess.confidence >= 0.8, guess


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_detects_uppercase_names(encoding):
    upper = [name.upper() for name in NAMES[:20]]
    guess = detect_encoding(encode(name, encoding) for name in upper)
    assert guess.encoding == encoding, guess
    assert guess.confidence >= 0.8, guess


def test_decomposed_cp1258_without_precomposed_letters_is_found():
    raw = [b"Ho\xcca", b"Xa\xde Ti\xea\xecn H\xfdng", b"Ph\xfd\xf5\xccng T\xe2n Phu\xec"]
    assert [decode(r, "cp1258") for r in raw] == ["Hòa", "Xã Tiến Hưng", "Phường Tân Phú"]
    assert detect_encoding(raw).encoding == "cp1258"


def test_utf8_evidence_and_a_damaged_value():
    raw = [name.encode() for name in NAMES]
    assert "valid UTF-8" in detect_encoding(raw).evidence
    raw[3] = raw[3][:-1] + b"\xff"  # one corrupted value does not flip the column
    guess = detect_encoding(raw)
    assert guess.encoding == "utf-8" and guess.confidence >= 0.8, guess


def test_legacy_evidence_reads_like_a_sentence():
    guess = detect_encoding(encode(name, "tcvn3") for name in NAMES)
    assert re.match(r"\d+ of \d+ accented words read as valid Vietnamese in TCVN3", guess.evidence)
    assert "TCVN3 (ABC)" in guess.evidence and "UTF-8 fails on" in guess.evidence


def test_detection_is_fast_on_ten_thousand_strings():
    for encoding in ("tcvn3", "utf-8"):
        rows = [encode(f"{NAMES[i % len(NAMES)]} {i}", encoding) for i in range(10_000)]
        start = time.perf_counter()
        guess = detect_encoding(iter(rows))
        assert time.perf_counter() - start < 0.5
        assert guess.encoding == encoding


def test_legacy_values_ending_in_a_tone_mark_are_not_taken_for_cut_utf8():
    # In Windows-1258 the tone bytes are UTF-8 lead bytes: "Phú" ends like a cut UTF-8 "ú".
    names = ["Phú", "Mỹ", "Thủ", "Tân Phú"]
    raw = [encode(name, "cp1258") for name in names]
    assert all(value[-1] >= 0xC0 for value in raw)
    guess = detect_encoding(raw)
    assert guess.encoding == "cp1258", guess
    assert [decode(value, guess.encoding) for value in raw] == names
