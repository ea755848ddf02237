"""A user's mistake ends with one plain line and exit status 2, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import serial

from kapmonitor.cli import EXIT_USER_ERROR, main
from kapmonitor.core.codes import Code
from tests.conftest import ROOT


def _run(capsys, *argv: str) -> str:
    status = main(list(argv))
    err = capsys.readouterr().err
    assert status == EXIT_USER_ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_protocol(capsys):
    line = _run(capsys, "record", "--device", "acme9000@/dev/ttyUSB0")
    assert "unknown protocol 'acme9000'" in line and "nonin2" in line


def test_device_written_wrongly(capsys):
    line = _run(capsys, "record", "--device", "/dev/ttyUSB0")
    assert "PROTOCOL@PORT" in line


def test_port_that_does_not_exist(capsys):
    line = _run(capsys, "record", "--device", "nonin2@/dev/ttyKAP-nothing-here")
    assert "port '/dev/ttyKAP-nothing-here' does not exist" in line


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_port_that_is_busy(capsys):
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    other_program = serial.Serial(path, exclusive=True)
    try:
        line = _run(capsys, "record", "--device", f"nonin2@{path}")
        assert line.endswith(f"port '{path}' is busy: another program is using it")
    finally:
        other_program.close()
        os.close(master)
        os.close(slave)


def test_url_scheme_pyserial_does_not_know(capsys):
    line = _run(capsys, "record", "--device", "nonin2@bogus://x")
    assert "'bogus://x' cannot be opened" in line


def test_nothing_listening_on_a_socket_url(capsys):
    line = _run(capsys, "record", "--device", "nonin2@socket://127.0.0.1:1")
    assert "socket://127.0.0.1:1" in line


def test_unknown_scenario(capsys):
    line = _run(capsys, "record", "--device", "sim:no-such-scenario")
    assert "unknown scenario 'no-such-scenario'" in line and "typical" in line


def test_scenario_file_with_a_syntax_error(capsys, tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "broken"\nduration_min = = 3\n')
    line = _run(capsys, "record", "--device", f"sim:{bad}")
    assert "broken.toml" in line and "TOML" in line


def test_speed_with_a_real_device_is_refused(capsys):
    line = _run(capsys, "record", "--device", "nonin2@loop://", "--speed", "60")
    assert "--speed only applies" in line


def test_decode_unknown_protocol_and_missing_file(capsys, tmp_path):
    assert "unknown protocol 'acme'" in _run(capsys, "decode", "--protocol", "acme", "-")
    line = _run(capsys, "decode", "--protocol", "nonin2", str(tmp_path / "missing.bin"))
    assert "cannot read" in line and "missing.bin" in line


def test_decode_of_the_simulator_is_refused(capsys):
    assert "'sim' is not a wire protocol" in _run(capsys, "decode", "--protocol", "sim", "-")


@pytest.mark.parametrize("duration", ["90", "ten minutes", "5x"])
def test_duration_without_a_unit_is_an_argument_error(capsys, duration):
    with pytest.raises(SystemExit) as exc:
        main(["record", "--device", "sim:typical", "--duration", duration])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"kapmonitor: argument --duration: '{duration}' is not a duration: write it with a unit, "
        "like 90m, 2h, 1h30m or 45s (see kapmonitor record --help)\n"
    )


def test_a_real_process_prints_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "record", "--device", "nonin2@/dev/ttyKAP-missing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_USER_ERROR
    assert result.stdout == ""
    assert result.stderr.startswith("kapmonitor: port '/dev/ttyKAP-missing' does not exist")
    assert "Traceback" not in result.stderr


def test_sigterm_while_the_database_is_down_stops_cleanly_and_loses_nothing(postgres):
    """Headless record, its PostgreSQL server stopped, then SIGTERM: one sentence, exit 2, and
    every measurement it wrote out is in the database once the server is back."""
    url = postgres.new_database()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kapmonitor", "record", "--device", "sim:typical", "--speed",
         "30", "--no-waves", "--db", url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        assert "recording session" in proc.stderr.readline()
        time.sleep(1.5)
        postgres.stop("fast")
        try:
            time.sleep(3.0)  # the recorder keeps what it cannot write
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            postgres.start()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err
    assert proc.returncode == EXIT_USER_ERROR, err
    last = err.splitlines()[-1]
    assert last.startswith("kapmonitor: ") and "spool" in last, err
    lines = [json.loads(line) for line in out.splitlines()]
    nibp = {Code.NIBP_SYS.value, Code.NIBP_DIA.value, Code.NIBP_MEAN.value}
    numerics = sum(
        1 for x in lines if "value" in x and "condition" not in x and x["code"] not in nibp
    )
    readings = sum(1 for x in lines if x.get("code") == Code.NIBP_SYS.value)
    assert numerics > 100
    shown = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "sessions", "show", "1", "--db", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"{numerics} numerics, {readings} NIBP readings" in shown.stdout
    print(f"SIGTERM, PostgreSQL down: {numerics} numerics and {readings} NIBP readings produced, "
          f"all stored once it was back (0 lost); said: {last}")  # fmt: skip


def test_database_errors_never_carry_the_values_written(tmp_path):
    """A failed write's message (logged, or shown) names no value: a patient identifier."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from kapmonitor.record.db import open_database

    db = open_database(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    try:
        with pytest.raises(SQLAlchemyError) as failed, db.engine.begin() as conn:
            conn.execute(text("INSERT INTO no_such_table VALUES (:p)"), {"p": "P-SECRET-77"})
    finally:
        db.close()
    assert "P-SECRET-77" not in str(failed.value)
