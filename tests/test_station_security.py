"""The clinic set-up: TLS, a password or certificate per client, and the ACL, on a real broker."""

from __future__ import annotations

import stat
import time

import pytest

from kapmonitor.station.broker import BrokerLink, Credentials, LinkState, parse_broker_url
from kapmonitor.station.contract import Kind, encode, topic
from kapmonitor.station.mosquitto import PrivateBroker, free_port
from kapmonitor.station.setup import generate
from tests.cli_process import kapmonitor
from tests.station_fixtures import needs_mosquitto, station, wait_for

pytestmark = [needs_mosquitto, pytest.mark.timeout(120)]


def _clinic(tmp_path, auth):
    port = free_port()
    setup = generate(tmp_path / "clinic", rooms=2, auth=auth, port=port)
    conf = (setup.folder / "mosquitto.conf").read_text()
    extra = "\n".join(line for line in conf.splitlines() if not line.startswith("listener"))
    broker = PrivateBroker(tmp_path / "broker", config=extra, port=port).start()
    return setup, broker


def _creds(setup, name, **override):
    files = setup.credentials(name)
    password = files["password"].read_text().strip() if "password" in files else None
    values = {
        "user": name if "password" in files else None,
        "password": password,
        "ca": files["ca"],
        "cert": files.get("cert"),
        "key": files.get("key"),
    }
    values.update(override)
    return Credentials(**values)


def _link(broker, creds, name):
    link = BrokerLink(parse_broker_url(broker.url), creds, client_id=name, persistent=False)
    link.start()
    return link


@pytest.mark.parametrize("auth", ["password", "certificate"])
def test_a_room_cannot_publish_as_another(tmp_path, auth):
    setup, broker = _clinic(tmp_path, auth)
    client = station(broker.url, _creds(setup, "station-1"))
    room1 = _link(broker, _creds(setup, "room-1"), "room-1")
    impostor = _link(broker, _creds(setup, "room-2"), "room-2")
    try:
        assert broker.url.startswith("mqtts://")
        wait_for(lambda: client.link.state is LinkState.CONNECTED, 10)
        wait_for(lambda: room1.state is impostor.state is LinkState.CONNECTED, 10)
        status = {"state": "live", "label": "genuine"}
        room1.publish(topic("room-1", Kind.STATUS), encode("room-1", Kind.STATUS, status), 1)
        wait_for(lambda: (v := client.model.room("room-1")) and v.label == "genuine", 10)
        forged = encode("room-1", Kind.STATUS, {"state": "live", "label": "forged"})
        impostor.publish(topic("room-1", Kind.STATUS), forged, 1)
        own = encode("room-2", Kind.STATUS, {"state": "live", "label": "room two"})
        impostor.publish(topic("room-2", Kind.STATUS), own, 1)  # after the forgery, in order
        wait_for(lambda: (v := client.model.room("room-2")) and v.label == "room two", 10)
        time.sleep(0.5)
        assert client.model.room("room-1").label == "genuine"
    finally:
        for link in (room1, impostor):
            link.stop()
        client.stop()
        broker.stop()


def test_keys_and_passwords_are_readable_by_their_owner_only(tmp_path):
    setup = generate(tmp_path / "clinic", rooms=1, auth="password")
    for path in [
        setup.folder / "ca.key",
        setup.folder / "broker.key",
        *setup.folder.glob("clients/*.password"),
    ]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    acl = (setup.folder / "acl").read_text()
    assert "user room-1\ntopic write kapmonitor/v1/room/room-1/#" in acl


def test_a_wrong_password_is_one_sentence_naming_the_broker(tmp_path):
    setup, broker = _clinic(tmp_path, "password")
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    try:
        result = kapmonitor(
            "station",
            "--broker",
            broker.url,
            "--watch",
            "--broker-user",
            "station-1",
            "--broker-password-file",
            str(wrong),
            "--broker-ca",
            str(setup.folder / "ca.crt"),
            timeout=30,
        )
    finally:
        broker.stop()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"kapmonitor: the broker {broker.url} refused kapmonitor")
    assert "not-the-password" not in result.stderr + result.stdout


def test_a_broker_certificate_from_another_ca_is_refused_in_one_sentence(tmp_path):
    setup, broker = _clinic(tmp_path, "password")
    other = generate(tmp_path / "other", rooms=1, auth="certificate")
    password = setup.credentials("station-1")["password"]
    try:
        result = kapmonitor(
            "station",
            "--broker",
            broker.url,
            "--watch",
            "--broker-user",
            "station-1",
            "--broker-password-file",
            str(password),
            "--broker-ca",
            str(other.folder / "ca.crt"),
            timeout=30,
        )
    finally:
        broker.stop()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate is refused" in lines[0], lines


def test_station_setup_command_writes_a_configuration_mosquitto_accepts(tmp_path):
    out = tmp_path / "clinic"
    result = kapmonitor("station-setup", "--rooms", "3", "--out", str(out), timeout=60)
    assert result.returncode == 0, result.stderr
    assert (out / "mosquitto.conf").is_file() and (out / "passwd").is_file()
    again = kapmonitor("station-setup", "--rooms", "3", "--out", str(out), timeout=60)
    assert again.returncode == 2 and "not empty" in again.stderr
