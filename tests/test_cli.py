"""The gis-service command: sample data, first-run init and accounts."""

import subprocess
import sys

import pytest
from werkzeug.security import check_password_hash

from gis_service import create_app


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
    second = run(empty_app, "init")
    assert "password" not in second.output and "Loaded sample" not in second.output


def test_users_create_and_list(empty_app):
    ok = run(empty_app, "users", "create", "lan", "--role", "inspector", "--password", "s3cret-pw")
    assert ok.exit_code == 0, ok.output
    listed = run(empty_app, "users", "list")
    assert "lan\tinspector" in listed.output
    dup = run(empty_app, "users", "create", "lan", "--role", "admin", "--password", "s3cret-pw")
    assert dup.exit_code == 1 and "already exists" in dup.output
    short = run(empty_app, "users", "create", "minh", "--role", "planner", "--password", "abc")
    assert short.exit_code == 1 and "at least 8" in short.output
    role = run(empty_app, "users", "create", "hoa", "--role", "boss", "--password", "s3cret-pw")
    assert role.exit_code == 2 and "boss" in role.output


def test_password_is_prompted_when_not_given(empty_app):
    result = run(empty_app, "users", "create", "tuan", "--role", "planner",
                 input="mat-khau-dai\nmat-khau-dai\n")
    assert result.exit_code == 0, result.output
    user = empty_app.extensions["gis_store"].get_user("tuan")
    assert check_password_hash(user.password_hash, "mat-khau-dai")


def test_console_script_is_installed(tmp_path):
    env = {"GIS_DATABASE": str(tmp_path / "c.sqlite"), "GIS_ENV_NAME": "development",
           "PATH": "/usr/bin:/bin"}
    exe = [sys.executable, "-c", "from gis_service.cli import main; main()"]
    result = subprocess.run([*exe, "sample"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "wards: 8 features" in result.stdout
