"""The link to the MQTT broker: its URL, its credentials, and a client that never blocks its user.

paho-mqtt 2.x (the Eclipse client every MQTT tutorial uses; kept up, MQTT 5 and 3.1.1, TLS) does
the protocol. This module sets it up the way a clinic needs it: a keep-alive of 5 s (not paho's
60 s: the broker must give a vanished room's Last Will within 7.5 s), a persistent session with
QoS 1 so alarm events cross a short outage, offline queueing, reconnection with backoff, and a
refusal (wrong password, untrusted certificate) said once, in one sentence naming the broker,
without a retry storm. Passwords come from options or the environment and are never printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from kapmonitor.core.errors import UserError
from kapmonitor.station.contract import KEEPALIVE_S

log = logging.getLogger(__name__)

USER_ENV = "KAPMONITOR_MQTT_USER"
PASSWORD_ENV = "KAPMONITOR_MQTT_PASSWORD"
CA_ENV = "KAPMONITOR_MQTT_CA"
CERT_ENV = "KAPMONITOR_MQTT_CERT"
KEY_ENV = "KAPMONITOR_MQTT_KEY"

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: Reconnection backoff: from 1 s, doubling, to 30 s (a home on a poor link tries for hours).
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
#: How long the broker keeps a persistent session (queued QoS 1 messages) of an absent client.
SESSION_EXPIRY_S = 3600
#: Messages queued while offline; beyond, the oldest numerics matter least (alarms are few).
MAX_QUEUED = 10_000
#: CONNACK reasons that mean "these credentials are refused": retrying cannot help.
_REFUSED = {
    "Bad user name or password",
    "Not authorized",
    "Client identifier not valid",
    "Banned",
    "Bad authentication method",
}


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(text: str) -> BrokerUrl:
    """``mqtt://host:port`` or ``mqtts://host:port`` (TLS); a bad one is a UserError."""
    hint = "give the broker as mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)"
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise UserError(f"the broker URL {text!r} is not valid: {hint}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UserError(f"the broker URL {text!r} is not valid: {hint}")
    if parts.username or parts.password:
        raise UserError(
            f"the broker URL must not carry a user or password (ps shows it to every user): "
            f"give them in ${USER_ENV} and ${PASSWORD_ENV}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UserError(f"the broker URL {text!r} is not valid: {hint}")
    return BrokerUrl(parts.hostname, port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts")


@dataclass(frozen=True)
class Credentials:
    """Who a client is to the broker; ``repr`` never shows the password."""

    user: str | None = None
    password: str | None = None
    ca: Path | None = None  #: the CA that signed the broker's certificate (mqtts)
    cert: Path | None = None  #: a client certificate, where the broker asks for one
    key: Path | None = None

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password={'***' if self.password else None})"

    @classmethod
    def from_options(
        cls,
        user: str | None = None,
        password_file: str | None = None,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> Credentials:
        """Options first, then the environment; files must be readable (one sentence if not)."""
        password = os.environ.get(PASSWORD_ENV) or None
        if password_file:
            try:
                password = Path(password_file).read_text().strip() or None
            except OSError as exc:
                raise UserError(
                    f"cannot read the broker password file {password_file}: "
                    f"{(exc.strerror or str(exc)).lower()}"
                ) from None
        paths = []
        for value, env, what in (
            (ca, CA_ENV, "CA"),
            (cert, CERT_ENV, "certificate"),
            (key, KEY_ENV, "key"),
        ):
            text = value or os.environ.get(env) or None
            if text and not Path(text).is_file():
                raise UserError(f"the broker {what} file {text} does not exist")
            paths.append(Path(text) if text else None)
        return cls(user or os.environ.get(USER_ENV) or None, password, *paths)


class LinkState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    NOT_CONNECTED = "not connected"  #: the broker cannot be reached now; retrying with backoff
    REFUSED = "refused"  #: credentials or certificate refused: retrying would not help


class BrokerLink:
    """One MQTT client on its own thread; :meth:`publish` queues and returns at once."""

    def __init__(
        self,
        url: BrokerUrl,
        credentials: Credentials,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        subscriptions: tuple[str, ...] = (),
        on_message: Callable[[str, bytes], object] | None = None,
        on_state: Callable[[LinkState, str], None] | None = None,
        persistent: bool = True,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.client_id = client_id
        self.will = will
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.on_state = on_state
        self.persistent = persistent
        self.state = LinkState.CONNECTING
        self.text = f"connecting to the broker {url}"
        self.connects = 0  #: successful connections so far (1 + reconnections)
        self._protocol = MQTTProtocolVersion.MQTTv5
        self._fallback = False  #: the broker has no MQTT 5: reconnect with 3.1.1
        self._stop = threading.Event()
        self._answered = threading.Event()  #: the first connection attempt has an outcome
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)

    # --- set-up -----------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        v5 = self._protocol is MQTTProtocolVersion.MQTTv5
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self._protocol,
            clean_session=None if v5 else not self.persistent,
        )
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(MAX_QUEUED)
        client.max_inflight_messages_set(100)
        c = self.credentials
        if c.user:
            client.username_pw_set(c.user, c.password)
        if self.url.tls:
            client.tls_set(
                ca_certs=str(c.ca) if c.ca else None,
                certfile=str(c.cert) if c.cert else None,
                keyfile=str(c.key) if c.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties | None:
        if self._protocol is not MQTTProtocolVersion.MQTTv5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S if self.persistent else 0
        return props

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, last: tuple[str, bytes] | None = None, timeout: float = 2.0) -> None:
        """Say ``last`` (a retained status, e.g. "ended") if connected, then disconnect."""
        if last is not None and self.state is LinkState.CONNECTED:
            info = self._client.publish(last[0], last[1], qos=1, retain=True)
            # Not sent in time: the Last Will says "offline" instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self._stop.set()
        self._client.disconnect()
        self._thread.join(timeout)

    def wait_answer(self, timeout: float) -> LinkState:
        """The state once the first attempt has an outcome (or ``timeout`` passed)."""
        self._answered.wait(timeout)
        return self.state

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Queue a message; never blocks. QoS 1 messages wait in the queue while offline and
        go out on reconnection; QoS 0 ones (numerics: only the latest matters) are dropped."""
        if self.state is LinkState.REFUSED:
            return False
        if qos == 0 and self.state is not LinkState.CONNECTED:
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    def _set(self, state: LinkState, text: str) -> None:
        changed = (state, text) != (self.state, self.text)
        self.state, self.text = state, text
        if changed and self.on_state is not None:
            try:
                self.on_state(state, text)
            except Exception:  # a listener's bug must not stop the link
                log.exception("link state listener failed")

    def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._stop.is_set():
            try:
                self._client.connect(
                    self.url.host,
                    self.url.port,
                    keepalive=KEEPALIVE_S,
                    clean_start=not self.persistent,
                    properties=self._connect_properties(),
                )
            except ssl.SSLError as exc:  # a refused certificate: the same answer every time
                self._refuse(f"its certificate is refused ({exc.reason or exc})")
                return
            except OSError as exc:  # unreachable, connection refused, no route, DNS
                reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
                self._set(
                    LinkState.NOT_CONNECTED,
                    f"not connected to the broker {self.url} ({reason}); retrying in {delay} s",
                )
                self._answered.set()
                self._stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            delay = RECONNECT_MIN_S
            # paho reconnects by itself from here, with the backoff set above.
            self._client.loop_forever(retry_first_connection=True)
            if self._fallback:
                self._fallback = False
                self._protocol = MQTTProtocolVersion.MQTTv311
                self._client = self._make_client()
                continue
            return

    def _refuse(self, why: str) -> None:
        self._set(LinkState.REFUSED, f"the broker {self.url} refused kapmonitor: {why}")
        log.debug("%s", self.text)
        self._answered.set()
        self._stop.set()

    # --- paho's callbacks (its thread) --------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            name = str(reason)
            if (
                name == "Unsupported protocol version"
                and not self._fallback
                and (self._protocol is MQTTProtocolVersion.MQTTv5)
            ):
                self._fallback = True  # a broker without MQTT 5: 3.1.1 does what we need
                client.disconnect()
                return
            if name in _REFUSED:
                user = f" the user {self.credentials.user!r}" if self.credentials.user else ""
                self._refuse(f"{name.lower()} for{user or ' an anonymous client'}")
                client.disconnect()
                return
            self._set(LinkState.NOT_CONNECTED, f"the broker {self.url} said {name}; retrying")
            self._answered.set()
            return
        self.connects += 1
        for topic in self.subscriptions:  # every time: a broker restarted without its sessions
            client.subscribe(topic, qos=1)
        self._set(LinkState.CONNECTED, f"connected to the broker {self.url}")
        self._answered.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.state is LinkState.REFUSED or self._stop.is_set():
            return
        self._set(
            LinkState.NOT_CONNECTED,
            f"lost the broker {self.url} ({str(reason).lower()}); reconnecting",
        )

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(msg.topic, bytes(msg.payload))
        except Exception:  # a station must outlive any message
            log.exception("handling a message on %r failed", msg.topic[:200])
