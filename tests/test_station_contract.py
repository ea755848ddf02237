"""The bus contract's parsers and the station model, without a broker (hypothesis on each)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapmonitor.core.errors import UserError
from kapmonitor.station.broker import parse_broker_url
from kapmonitor.station.contract import ContractError, Kind, decode, encode, topic
from kapmonitor.station.model import LINK_LOST, LIVE, StationModel
from kapmonitor.station.watch import Watcher


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@given(st.text(max_size=200))
def test_a_broker_url_is_parsed_or_refused_in_one_sentence(text):
    try:
        url = parse_broker_url(text)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert url.host and 0 < url.port < 65536


def test_broker_urls():
    assert str(parse_broker_url("mqtts://clinic.example")) == "mqtts://clinic.example:8883"
    assert parse_broker_url("mqtt://127.0.0.1:1999").port == 1999
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://u:p@h", "h:1883"):
        with pytest.raises(UserError):
            parse_broker_url(bad)


@settings(max_examples=300)
@given(st.sampled_from(list(Kind)), st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decode_accepts_or_raises_contract_error_only(kind, payload):
    with contextlib.suppress(ContractError):
        decode(topic("room-1", kind), payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.sampled_from(list(Kind)), st.dictionaries(st.text(), json_values, max_size=6))
def test_the_model_never_breaks_on_any_json_body(kind, body):
    model = StationModel()
    model.set_connected(True)
    ok = model.handle(topic("room-1", kind), encode("room-1", kind, body))
    assert ok or model.malformed + model.foreign == 1
    model.snapshot()  # whatever was taken, the view can be drawn


def test_link_lost_by_silence_and_by_last_will():
    clock = Clock()
    model = StationModel(stale_s=6.0, clock=clock)
    model.set_connected(True)
    model.handle(topic("a", Kind.STATUS), encode("a", Kind.STATUS, {"state": "live"}))
    model.handle(topic("b", Kind.STATUS), encode("b", Kind.STATUS, {"state": "live"}))
    clock.t += 5
    model.handle(topic("b", Kind.NUMERICS), encode("b", Kind.NUMERICS, {"t": 1, "values": {}}))
    clock.t += 2
    assert model.tick() == ["a"]
    assert {v.room: v.state for v in model.snapshot()} == {"a": LINK_LOST, "b": LIVE}
    model.handle(topic("b", Kind.STATUS), encode("b", Kind.STATUS, {"state": "offline"}))
    assert model.room("b").state == LINK_LOST
    model.set_connected(False)
    assert "station" in model.room("a").link


def test_rooms_sort_most_urgent_first_and_old_events_do_not_undo_newer_ones():
    model = StationModel()
    model.set_connected(True)

    def alarm(room, seq, phase, priority="high"):
        body = {
            "t": 1.0,
            "seq": seq,
            "phase": phase,
            "alarm": {"id": "x", "condition": "spo2-low", "priority": priority, "state": "active"},
        }
        model.handle(topic(room, Kind.ALARM), encode(room, Kind.ALARM, body))

    for room in ("a-calm", "b-low", "c-high"):
        model.handle(topic(room, Kind.STATUS), encode(room, Kind.STATUS, {"state": "live"}))
    alarm("b-low", 1, "start", "low")
    alarm("c-high", 1, "start")
    assert [v.room for v in model.snapshot()] == ["c-high", "b-low", "a-calm"]
    alarm("c-high", 3, "end")
    alarm("c-high", 2, "continue")  # resent late: the end stands
    assert model.room("c-high").alarms == ()
    assert [e.phase for e in model.alarm_events("c-high")] == ["start", "end", "continue"]


def test_watch_lines_at_most_once_a_second_per_room():
    clock = Clock()
    model = StationModel(clock=clock)
    model.set_connected(True)
    watcher = Watcher(model, clock=clock)
    for i in range(5):
        body = {"t": i, "values": {"MDC_PULS_OXIM_SAT_O2": 90 + i}}
        model.handle(topic("a", Kind.NUMERICS), encode("a", Kind.NUMERICS, body))
        assert len(watcher.lines()) == (1 if i == 0 else 0)
        clock.t += 0.2
    clock.t += 1
    assert watcher.lines()[0]["numerics"] == {"MDC_PULS_OXIM_SAT_O2": 94}
    assert watcher.lines() == []  # nothing changed
