"""The gis-service command: sample data, first-run init and accounts."""

import subprocess
import sys

import pytest
from werkzeug.security import check_password_hash

from gis_service import create_app
from layers.ingest.encoding import encode


@pytest.fixture
def empty_app(tmp_path):
    return create_app({"TESTING": True, "DATABASE": str(tmp_path / "cli.sqlite"),
                       "SECRET_KEY": "k"})


def run(app, *args, **kwargs):
    return app.test_cli_runner().invoke(args=list(args), **kwargs)


def test_sample_loads_once_and_replace_reloads(empty_app):
    first = run(empty_app, "sample")
    assert first.exit_code == 0, first.output
    assert "hotspots: 150 features" in first.output and "Illustrative" in first.output
    again = run(empty_app, "sample")
    assert again.exit_code == 1 and "already exist" in again.output and "--replace" in again.output
    replaced = run(empty_app, "sample", "--replace")
    assert replaced.exit_code == 0
    assert empty_app.extensions["gis_store"].count_features("hotspots") == 150


def test_init_loads_sample_and_creates_one_admin(empty_app):
    result = run(empty_app, "init")
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ")[1].split()[0]
    admin = empty_app.extensions["gis_store"].get_user("admin")
    assert admin.role == "admin" and check_password_hash(admin.password_hash, password)
    assert admin.must_change_password  # printed once: the admin chooses their own at login
    second = run(empty_app, "init")
    assert "password" not in second.output and "Loaded sample" not in second.output


STRONG = "mua-thu-dong-xoai-xanh"


def test_users_create_and_list(empty_app):
    ok = run(empty_app, "users", "create", "lan", "--role", "inspector", "--password", STRONG)
    assert ok.exit_code == 0, ok.output
    listed = run(empty_app, "users", "list")
    assert "lan\tinspector\tactive" in listed.output
    dup = run(empty_app, "users", "create", "LAN", "--role", "admin", "--password", STRONG)
    assert dup.exit_code == 1 and "already exists" in dup.output
    short = run(empty_app, "users", "create", "minh", "--role", "planner", "--password", "abc")
    assert short.exit_code == 1 and "at least 10" in short.output
    role = run(empty_app, "users", "create", "hoa", "--role", "boss", "--password", STRONG)
    assert role.exit_code == 2 and "boss" in role.output


@pytest.mark.parametrize("password, reason", [
    ("12345678", "at least 10"), ("password", "at least 10"), ("1234567890", "common"),
    ("Password123", "common"), ("zzzzzzzzzzzz", "repeated"), ("minh-la-toi-2024", "username"),
    ("anhyeuem12", "too easy to guess")])
def test_weak_passwords_are_refused_with_the_reason(empty_app, password, reason):
    result = run(empty_app, "users", "create", "Minh", "--role", "planner", "--password",
                 password)
    assert result.exit_code == 1 and reason in result.output, result.output
    assert empty_app.extensions["gis_store"].get_user("minh") is None


def test_users_set_role_disable_enable_and_reset(empty_app):
    store = empty_app.extensions["gis_store"]
    for name, role in (("boss", "admin"), ("lan", "inspector")):
        assert run(empty_app, "users", "create", name, "--role", role,
                   "--password", STRONG).exit_code == 0
    assert run(empty_app, "users", "set-role", "LAN", "planner").exit_code == 0
    assert store.get_user("lan").role == "planner"
    assert run(empty_app, "users", "disable", "lan").exit_code == 0
    assert "lan\tplanner\tdisabled" in run(empty_app, "users", "list").output
    assert run(empty_app, "users", "enable", "lan").exit_code == 0
    reset = run(empty_app, "users", "reset-password", "lan")
    assert reset.exit_code == 0, reset.output
    temporary = reset.output.split(": ")[1].split()[0]
    user = store.get_user("lan")
    assert user.must_change_password and check_password_hash(user.password_hash, temporary)
    last = run(empty_app, "users", "disable", "boss")
    assert last.exit_code == 1 and "administrator must remain" in last.output
    unknown = run(empty_app, "users", "disable", "nobody")
    assert unknown.exit_code == 1 and "No account named 'nobody'" in unknown.output
    actions = [e.action for e in store.list_audit(actor="cli")[0]]
    assert {"user.create", "user.role", "user.disable", "user.enable", "user.password"} <= set(
        actions)


def test_password_is_prompted_when_not_given(empty_app):
    result = run(empty_app, "users", "create", "tuan", "--role", "planner",
                 input="mat-khau-dai\nmat-khau-dai\n")
    assert result.exit_code == 0, result.output
    user = empty_app.extensions["gis_store"].get_user("tuan")
    assert check_password_hash(user.password_hash, "mat-khau-dai")


def plain_shell(tmp_path, *args, env=None):
    """``gis-service ARGS`` as typed in a fresh shell: no GIS_SECRET_KEY, production mode."""
    env = {"GIS_DATABASE": str(tmp_path / "c.sqlite"), "PATH": "/usr/bin:/bin",
           "GIS_RATELIMIT_DB": str(tmp_path / "rl.sqlite"),
           "GIS_UPLOAD_DIR": str(tmp_path / "uploads"), **(env or {})}
    exe = [sys.executable, "-c", "from gis_service.cli import main; main()"]
    return subprocess.run([*exe, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_account_commands_work_from_a_plain_shell_without_a_secret_key(tmp_path):
    created = plain_shell(tmp_path, "users", "create", "lan", "--role", "admin",
                          "--password", STRONG)
    assert created.returncode == 0, created.stderr
    listed = plain_shell(tmp_path, "users", "list")
    assert listed.returncode == 0 and "lan\tadmin" in listed.stdout
    served = plain_shell(tmp_path, "run", "--port", "1")
    assert served.returncode != 0 and "Traceback" not in served.stderr
    assert "GIS_SECRET_KEY must be set" in served.stderr


def test_console_script_is_installed(tmp_path):
    env = {"GIS_DATABASE": str(tmp_path / "c.sqlite"), "GIS_ENV_NAME": "development",
           "PATH": "/usr/bin:/bin"}
    exe = [sys.executable, "-c", "from gis_service.cli import main; main()"]
    result = subprocess.run([*exe, "sample"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "wards: 8 features" in result.stdout


def test_an_import_speaks_vietnamese_from_a_plain_shell(tmp_path):
    """A planner's import from the command line reads in Vietnamese, the core's evidence and
    refusals included; GIS_CLI_LANG=en switches it to English."""
    rows = ["Tên,Phường,Kinh độ,Vĩ độ,Ngày phát hiện",
            "Bãi rác tự phát,Tân Phú,106.885,11.535,05/03/2024",
            "Cống thoát nước hôi,P. Tân Bình,106.87,11.52,17/11/2024"]
    csv = tmp_path / "diem.csv"
    csv.write_bytes(encode("\r\n".join(rows) + "\r\n", "cp1258"))
    preview = plain_shell(tmp_path, "layers", "import", str(csv), "--preview")
    assert preview.returncode == 0, preview.stderr
    assert "Tập dữ liệu: diem.csv (csv), 2 đối tượng" in preview.stdout
    assert "Bảng mã: cp1258" in preview.stdout and "Cảnh báo:" in preview.stdout
    assert "accented words" not in preview.stdout  # the encoding evidence is translated too
    refused = plain_shell(tmp_path, "layers", "import", str(csv))
    assert refused.returncode == 1 and "chạy lại với --yes" in refused.stderr
    english = plain_shell(tmp_path, "layers", "import", str(csv), "--preview",
                          env={"GIS_CLI_LANG": "en"})
    assert "Dataset: diem.csv (csv), 2 features" in english.stdout
