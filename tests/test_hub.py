"""The hub: every consumer gets every item in order, and a stalled consumer loses only its own."""

from __future__ import annotations

import logging
import threading

from kapmonitor.core.codes import Code
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Numeric, Stamp


def _item(i: int) -> Numeric:
    return Numeric("dev", Code.SPO2, float(i), Stamp(float(i), float(i)))


def test_every_subscriber_gets_every_item_in_order():
    hub = Hub()
    a, b = hub.subscribe("alarms"), hub.subscribe("recorder")
    for i in range(100):
        hub.publish(_item(i))
    for sub in (a, b):
        assert [it.value for it in sub.drain()] == list(range(100))
        assert sub.dropped == 0


def test_a_stalled_consumer_drops_only_its_own_items_and_says_so(caplog):
    hub = Hub()
    fast = hub.subscribe("alarms", maxsize=1000)
    stalled = hub.subscribe("screen", maxsize=10)
    with caplog.at_level(logging.WARNING, logger="kapmonitor.core.hub"):
        for i in range(500):
            hub.publish(_item(i))
    assert len(fast.drain()) == 500 and fast.dropped == 0
    assert [it.value for it in stalled.drain()] == list(range(10))
    assert stalled.dropped == 490
    assert "'screen' is falling behind" in caplog.text
    # One warning for a burst, not one per item.
    assert caplog.text.count("falling behind") == 1


def test_publishing_never_blocks_on_a_consumer_that_never_reads():
    hub = Hub()
    hub.subscribe("never-read", maxsize=5)
    done = threading.Event()

    def publisher():
        for i in range(10_000):
            hub.publish(_item(i))
        done.set()

    threading.Thread(target=publisher, daemon=True).start()
    assert done.wait(5), "a full queue blocked the publisher"


def test_items_from_several_publishers_all_arrive():
    hub = Hub()
    sub = hub.subscribe("recorder", maxsize=100_000)
    threads = [
        threading.Thread(target=lambda k=k: [hub.publish(_item(k * 1000 + i)) for i in range(1000)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = sorted(it.value for it in sub.drain())
    assert values == [float(v) for v in range(4000)]


def test_get_waits_and_close_wakes_a_waiting_reader():
    hub = Hub()
    sub = hub.subscribe("x")
    assert sub.get(timeout=0.01) is None
    got = []
    reader = threading.Thread(target=lambda: got.append(sub.get(timeout=10)))
    reader.start()
    hub.unsubscribe(sub)
    reader.join(5)
    assert not reader.is_alive() and got == [None]
    hub.publish(_item(1))
    assert len(sub) == 0
