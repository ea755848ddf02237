"""A database server's password: given outside the URL, never printed, warned about in --db.

The server here (tests/conftest.py) admits its password role only with the password
(scram-sha-256), so every way of giving it is checked against a real refusal: the environment
(``KAPMONITOR_DB_PASSWORD``, libpq's ``PGPASSWORD``), a file (``--db-password-file``, libpq's
``PGPASSFILE``) and ``~/.pgpass``, which libpq reads by itself when the URL has no password.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kapmonitor.cli import _MaskPasswords
from kapmonitor.record.db import has_password
from kapmonitor.record.db_env import mask_password
from tests.cli_process import kapmonitor

pytestmark = pytest.mark.skipif(os.name != "posix", reason="libpq's password files are POSIX")


@pytest.fixture
def server(postgres) -> tuple[str, str, object]:
    """(URL without password, the password, the server)."""
    return postgres.password_database(), postgres.PASSWORD, postgres


def listed(url: str, *extra: str, env: dict[str, str] | None = None):
    return kapmonitor("sessions", "list", "--db", url, *extra, env=env)


def test_without_the_password_the_server_refuses_in_one_sentence(server):
    url, _, _ = server
    result = listed(url)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "password" in result.stderr


@pytest.mark.parametrize("variable", ["KAPMONITOR_DB_PASSWORD", "PGPASSWORD"])
def test_the_password_from_the_environment(server, variable):
    url, password, _ = server
    result = listed(url, env={variable: password})
    assert result.returncode == 0, result.stderr
    assert password not in result.stderr + result.stdout


def test_the_password_from_a_file_only_its_owner_reads(server, tmp_path: Path):
    url, password, _ = server
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    result = kapmonitor(
        "record", "--device", "sim:typical", "--speed", "20000", "--duration", "2m",
        "--no-waves", "--db", url, "--db-password-file", str(secret),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert password not in result.stderr
    secret.chmod(0o644)
    refused = listed(url, "--db-password-file", str(secret))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"kapmonitor: the password file '{secret}' can be read by other users: chmod 600 it"
    ]


@pytest.mark.parametrize("where", ["home", "PGPASSFILE"])
def test_libpq_reads_pgpass_when_the_url_has_no_password(server, tmp_path: Path, where):
    url, password, postgres = server
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass" if where == "home" else tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:*:{postgres.PASSWORD_ROLE}:{password}\n")
    pgpass.chmod(0o600)
    env = {"HOME": str(home)} | ({"PGPASSFILE": str(pgpass)} if where == "PGPASSFILE" else {})
    result = listed(url, env=env)
    assert result.returncode == 0, result.stderr


def test_a_password_in_db_works_is_warned_about_and_never_printed(server):
    url, password, _ = server
    with_password = url.replace("kap_pw@", f"kap_pw:{password}@")
    result = kapmonitor(
        "record", "--device", "sim:typical", "--speed", "20000", "--duration", "2m",
        "--no-waves", "--db", with_password,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert password not in result.stderr + result.stdout
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "can be seen by other users" in warning[0]
    wrong = listed(with_password.replace(password, "not-" + password))
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert password not in wrong.stderr


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql+psycopg://kap:s3cret@db.clinic:5432/kap", "postgresql+psycopg://kap:***@db.clinic:5432/kap"),
        ("cannot open 'postgresql://kap:p@ss:w/rd@h:abc/kap'", "cannot open 'postgresql://kap:***@h:abc/kap'"),
        ("postgresql+psycopg//kap:s3cret@h/kap", "postgresql+psycopg//kap:***@h/kap"),
        ("postgresql://kap@h:5432/kap", "postgresql://kap@h:5432/kap"),
        ("sqlite:////home/n/kapmonitor.sqlite3", "sqlite:////home/n/kapmonitor.sqlite3"),
    ],
)  # fmt: skip
def test_passwords_are_masked_in_any_text(text: str, shown: str):
    assert mask_password(text) == shown
    assert has_password(text) == ("***" in shown)


def test_log_lines_never_show_a_password():
    record = logging.LogRecord(
        "kapmonitor", logging.WARNING, __file__, 1, "spool kept: %s",
        ("could not reach postgresql://kap:s3cret@h/kap",), None,
    )  # fmt: skip
    assert _MaskPasswords().filter(record)
    assert record.getMessage() == "spool kept: could not reach postgresql://kap:***@h/kap"
