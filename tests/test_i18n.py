"""The Vietnamese catalogue covers every UI string, so no page falls back to English."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "gis_service" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"


def source_strings() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = extract_from_dir(str(ROOT / "gis_service"), method_map,
                             keywords={"_": None, "gettext": None, "_l": None,
                                       "lazy_gettext": None})
    return {message if isinstance(message, str) else message[0]
            for _, _, message, _, _ in found}


def test_every_ui_string_has_a_vietnamese_translation():
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle, locale="vi")
    translated = {m.id for m in catalogue if m.id and m.string and not m.fuzzy}
    missing = sorted(source_strings() - translated)
    assert not missing, f"untranslated: {missing} (run make update-translations)"
