"""The Vietnamese catalogue covers every UI string and every message of the core, so no
page falls back to English."""

import ast
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from layers import errors

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "gis_service" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"


def source_strings() -> set[str]:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    found = extract_from_dir(str(ROOT / "gis_service"), method_map,
                             keywords={"_": None, "gettext": None, "_l": None,
                                       "lazy_gettext": None, "Message": None})
    return {message if isinstance(message, str) else message[0]
            for _, _, message, _, _ in found}


def core_messages() -> set[str]:
    """The ids of layers/ (``Message("…")`` and ``kept("…")``), as pybabel extracts them."""
    found = extract_from_dir(str(ROOT / "layers"), [("**.py", "python")],
                             keywords={"Message": None, "kept": None})
    return {message for _, _, message, _, _ in found}


def translated() -> set[str]:
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle, locale="vi")
    return {m.id for m in catalogue if m.id and m.string and not m.fuzzy}


def test_every_ui_string_has_a_vietnamese_translation():
    missing = sorted(source_strings() - translated())
    assert not missing, f"untranslated: {missing} (run make update-translations)"


def test_every_core_message_has_a_vietnamese_translation():
    ids = core_messages()
    assert "bbox values must be finite numbers" in ids  # the extraction does see layers/
    missing = sorted(ids - translated())
    assert not missing, f"untranslated core messages: {missing} (run make update-translations)"


# Every error class of the core, by the name a raise statement uses.
ERRORS = {name for name, value in vars(errors).items()
          if isinstance(value, type) and issubclass(value, errors.GisError)}


def _is_text(node: ast.expr) -> bool:
    """A literal, f-string, concatenation, ``.format`` or ``.join``: untranslatable English."""
    if isinstance(node, ast.Constant | ast.JoinedStr | ast.BinOp):
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("format", "join"))


def test_core_errors_and_warnings_are_message_ids():
    """Everything layers/ tells a person is a Message, so the web face can translate it:
    no error is raised with bare text (in gis_service neither: there ``_()`` or a Message),
    and every Message names its id literally (or by a ``kept`` constant), where pybabel
    finds it."""
    assert {"InvalidQuery", "InvalidUpload", "LayerNotFound"} <= ERRORS
    bare = []
    for path in sorted([*(ROOT / "layers").rglob("*.py"), *(ROOT / "gis_service").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name in ERRORS and _is_text(first):
                bare.append(f"{where} raises {name} with bare text")
            if name == "append" and getattr(node.func.value, "id", "") == "warnings" and \
                    _is_text(first):
                bare.append(f"{where} appends a bare text warning")
            if name == "Message" and path.name != "messages.py" and not (
                    isinstance(first, ast.Constant) or (isinstance(first, ast.Name)
                                                        and first.id.isupper())):
                bare.append(f"{where} builds a Message from a computed id")
    assert not bare, "wrap these in layers.messages.Message: " + "; ".join(bare)


def test_a_bad_query_reads_in_vietnamese(inspector):
    """The core's InvalidQuery reaches a Vietnamese client in Vietnamese, an English one in
    English, through the one error handler."""
    vi = inspector.get("/api/layers/hotspots/features?status=fixed")
    assert vi.status_code == 400
    assert vi.json["error"] == ("status phải là một trong reported, verified, in_progress, "
                                "resolved, dismissed; nhận được 'fixed'")
    en = inspector.get("/api/layers/hotspots/features?status=fixed",
                       headers={"Accept-Language": "en"})
    assert en.json["error"].startswith("status must be one of ")
    page = inspector.get("/api/layers/nope/features")
    assert page.status_code == 404 and page.json["error"] == "Không có lớp tên 'nope'"


def test_import_preview_reasons_warnings_and_notes_read_in_vietnamese(app, client, tmp_path):
    from tests.ingest_files import TRAP_PRJ
    from tests.support import csrf_token, login
    from tests.test_manage import shapefile_bytes, upload

    planner = login(client, "planner")
    token_url = upload(planner, shapefile_bytes(tmp_path, encoding="tcvn3",
                                                prj=TRAP_PRJ)).headers["Location"]
    html = planner.get(token_url + "?kind=hotspot").get_data(as_text=True)
    assert "Tệp .prj có tham số TM-3" in html  # the CRS warning
    assert "bị ghi nhầm hệ quy chiếu" in html  # the candidate's reason
    assert "từ có dấu đọc ra tiếng Việt hợp lệ theo TCVN3 (ABC)" in html  # encoding evidence
    assert "names the WGS 84 datum" not in html and "accented words" not in html
    form = {"csrf_token": csrf_token(planner, token_url), "kind": "hotspot", "title": "Điểm",
            "slug": "diem", "map_name": "ten", "confirm": "on"}
    refused = planner.post(token_url, data=form).get_data(as_text=True)
    assert "Lớp Điểm nóng ô nhiễm cần ghép các trường sau với cột: Loại ô nhiễm" in refused
    assert "needs these fields mapped" not in refused


def test_version_notes_read_in_vietnamese(client, tmp_path):
    """Notes the store keeps as text (an import, a restore) come back as their message."""
    from tests.support import csrf_token, login
    from tests.test_manage import shapefile_bytes, upload

    planner = login(client, "planner")
    for n, target in enumerate(("", "diem")):
        token_url = upload(planner, shapefile_bytes(tmp_path / str(n))).headers["Location"]
        form = {"csrf_token": csrf_token(planner, token_url), "kind": "generic",
                "title": "Điểm", "slug": "diem", "target": target, "apply": "1"}
        assert planner.post(token_url, data=form).status_code == 302
    token = csrf_token(planner, "/layers/diem/versions")
    assert planner.post("/layers/diem/versions/1/restore",
                        data={"csrf_token": token, "apply": "1"}).status_code == 302
    html = planner.get("/layers/diem/versions").get_data(as_text=True)
    assert "nhập từ diem_nong.zip" in html and "khôi phục từ phiên bản 1" in html
    assert "import of" not in html and "restored from" not in html
    english = planner.get("/layers/diem/versions?lang=en").get_data(as_text=True)
    assert "import of diem_nong.zip" in english and "restored from version 1" in english
    sample = planner.get("/layers/hotspots/versions?lang=vi").get_data(as_text=True)
    assert "Dữ liệu minh hoạ do máy tạo ngẫu nhiên" in sample and "Illustrative" not in sample
