#!/usr/bin/env python3
"""Validate MQTT discovery payloads with Home Assistant's own code.

    target/home-assistant/venv-2024.3.3/bin/python ci/home-assistant/validate_discovery.py [FILE|-] [--prefix P]

Input: JSON lines (FILE or stdin), each {"topic": "...", "payload": "...", "retain": true} -- the discovery config
messages a board published and, optionally, the state / availability messages of its topics. `payload` may also
be a JSON object (it is serialised). Blank lines and lines starting with '#' are skipped.

Output: one JSON line per input message, in input order:
    {"topic": ..., "ok": bool, "errors": [...], "warnings": [...], "info": [...], "entity": {...} | null}
and exit status 1 if any message has an error (2 on a usage / setup problem).

How: a real Home Assistant core is started in-process in a temp config dir (bootstrap.async_setup_hass, the
path `hass` itself takes) with the MQTT config entry set up and discovery on. Only the socket under paho is
replaced: a fake paho client that acknowledges connect / subscribe / publish (what HA's own test suite does).
Each message is then handed to HA's MQTT client exactly as paho would hand over a received PUBLISH, so it runs
HA's whole path: the discovery topic regex, abbreviation / device / origin expansion, `~`, the platform's
DISCOVERY_SCHEMA, entity creation (device registry, entity naming, availability, templates) and the state
writes with the sensor checks (state_class vs device_class, unit vs device_class, numeric values, ...).

What HA logs while it processes a message is that message's result: records of level ERROR and above are
errors, WARNING records are warnings, and INFO records of the MQTT / entity code that are not routine
("Found new component ...") are listed under "info" (e.g. HA's note that a `dev` block lacks a `name`). A config
message that HA turns into no entity (schema error, unsupported component, bad topic) also gets the error
"no entity was created". All discovery configs are processed first (as a broker replays retained configs),
then the other messages in input order; every message is delivered as a live (not retained) PUBLISH, as a
broker delivers to a client that is already subscribed.

HA runs its sensor checks (state_class vs device_class, unit vs device_class, numeric value) in
SensorEntity.state, i.e. only when it writes the state of an *available* entity, and the unit check only with a
value. After the messages, the validator therefore evaluates SensorEntity.state of every MQTT sensor once more
(each check reports once per entity, so nothing is reported twice); a sensor without a value that HA expects to
be numeric is given the value 0 for that evaluation. Messages from this step are prefixed "[sensor check]" or
"[probe value 0]"; `--no-probe` turns the step off. The "entity" object is taken before it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ha_common  # noqa: E402

ROUTINE_INFO = re.compile(
    r"^(Found new component|Component has already been discovered|Setting up |Setup of |Got update for entity"
    r"|Updating component|Removing component|Unloading component|Connected to MQTT|MQTT client initialized"
    r"|Disconnected from MQTT|Loaded |Loading |Stopping |Starting |Home Assistant |Registered new )"
)
INFO_LOGGERS = ("homeassistant.components.mqtt", "homeassistant.helpers.entity", "homeassistant.components.sensor",
                "homeassistant.components.binary_sensor", "homeassistant.components.button")
MARK_LOGGER = "meterrig.validate.mark"
# With --startup: what HA logged while it started (before the first message), reported as a line of its own.
STARTUP: dict | None = None
HA_VERSION = "?"


# ---------------------------------------------------------------------------------------------------------------
# Log capture: records are collected by a handler on the root logger; HA moves root handlers behind its queue
# listener thread, so each message is closed by a marker record and we wait until the marker has arrived.
class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.cv = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cv:
            self.records.append(record)
            self.cv.notify_all()

    def take_until_mark(self, mark: str, timeout: float = 10.0) -> list[logging.LogRecord]:
        logging.getLogger(MARK_LOGGER).warning(mark)
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for i, r in enumerate(self.records):
                    if r.name == MARK_LOGGER and r.getMessage() == mark:
                        taken, self.records = self.records[:i], self.records[i + 1 :]
                        return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    taken, self.records = self.records, []
                    return taken
                self.cv.wait(left)


def describe(record: logging.LogRecord) -> str:
    try:
        msg = record.getMessage()
    except Exception:  # noqa: BLE001
        msg = str(record.msg)
    if "\nTraceback (most recent call last):" in msg:  # keep the message and the final exception line
        lines = [ln for ln in msg.splitlines() if ln.strip()]
        msg = f"{lines[0]} -- {lines[-1].strip()}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        msg += f" -- {type(exc).__name__}: {exc}"
    return f"[{record.name}] {msg}"


def classify(records: list[logging.LogRecord], out: dict, prefix: str = "") -> None:
    for r in records:
        if r.name == MARK_LOGGER:
            continue
        text = prefix + describe(r)
        if r.levelno >= logging.ERROR:
            out["errors"].append(text)
        elif r.levelno >= logging.WARNING:
            out["warnings"].append(text)
        elif r.name.startswith(INFO_LOGGERS) and not ROUTINE_INFO.match(r.getMessage()):
            out["info"].append(text)


# ---------------------------------------------------------------------------------------------------------------
# The fake transport under HA's MQTT client: paho's Client minus the socket.
LOOP: asyncio.AbstractEventLoop | None = None


class FakeMessageInfo:
    def __init__(self, mid: int) -> None:
        self.mid = mid
        self.rc = 0

    def is_published(self) -> bool:
        return True

    def wait_for_publish(self, timeout: float | None = None) -> None:
        return None


class FakePahoClient:
    """Acknowledges connect / subscribe / unsubscribe / publish on HA's event loop, like a broker would."""

    published: list[tuple[str, Any, int, bool]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import paho.mqtt

        self._v2 = not paho.mqtt.__version__.startswith("1.")
        self._mid = 0
        self.on_connect = self.on_disconnect = self.on_message = None
        self.on_publish = self.on_subscribe = self.on_unsubscribe = None
        self.suppress_exceptions = True

    def __getattr__(self, name: str) -> Any:  # setup, enable_logger, will_set, tls_set, loop_start, ...
        if name.startswith("on_"):
            raise AttributeError(name)
        return lambda *a, **k: 0

    def _next_mid(self) -> int:
        self._mid += 1
        return self._mid

    def _later(self, fn: Any, *args: Any) -> None:
        if fn is not None:
            LOOP.call_soon_threadsafe(fn, *args)

    def connect(self, *args: Any, **kwargs: Any) -> int:
        if self._v2:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.reasoncodes import ReasonCode

            self._later(self.on_connect, self, None, {}, ReasonCode(PacketTypes.CONNACK, "Success"), None)
        else:
            self._later(self.on_connect, self, None, {}, 0)
        return 0

    reconnect = connect

    def subscribe(self, topics: Any, qos: int = 0, *args: Any, **kwargs: Any) -> tuple[int, int]:
        mid = self._next_mid()
        n = len(topics) if isinstance(topics, list) else 1
        if self._v2:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.reasoncodes import ReasonCode

            self._later(self.on_subscribe, self, None, mid, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 0")] * n, None)
        else:
            self._later(self.on_subscribe, self, None, mid, (0,) * n)
        return 0, mid

    def unsubscribe(self, topics: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
        mid = self._next_mid()
        if self._v2:
            self._later(self.on_unsubscribe, self, None, mid, [], None)
        else:
            self._later(self.on_unsubscribe, self, None, mid)
        return 0, mid

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False, *a: Any, **k: Any):
        mid = self._next_mid()
        FakePahoClient.published.append((topic, payload, qos, retain))
        if self._v2:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.reasoncodes import ReasonCode

            self._later(self.on_publish, self, None, mid, ReasonCode(PacketTypes.PUBACK, "Success"), None)
        else:
            self._later(self.on_publish, self, None, mid)
        return FakeMessageInfo(mid)


def scale_log_rate_check(devices: int) -> None:
    """HA (2024.x and later) warns "Module X is logging too frequently" when a logger writes more than 200 INFO+
    records in 5 minutes. One HA here takes the discovery of many devices in seconds (the entity registry logs each
    new entity), so the limit is scaled to the number of devices in the input: per device it stays HA's. The
    validator's own marker records are not counted."""
    try:
        from homeassistant.util import logging as ha_logging
    except ImportError:
        return
    listener = getattr(ha_logging, "HomeAssistantQueueListener", None)
    if listener is None or not hasattr(listener, "MAX_LOGS_COUNT"):
        return
    listener.MAX_LOGS_COUNT = listener.MAX_LOGS_COUNT * max(1, devices)
    excluded = list(getattr(listener, "EXCLUDED_LOG_COUNT_MODULES", []))
    listener.EXCLUDED_LOG_COUNT_MODULES = excluded + [MARK_LOGGER]


def install_fake_transport() -> None:
    import paho.mqtt.client

    try:  # HA >= 2024.6: its own paho subclass, imported where the client is set up
        from homeassistant.components.mqtt import async_client

        async_client.AsyncMQTTClient = FakePahoClient  # type: ignore[misc]
    except ImportError:
        pass
    paho.mqtt.client.Client = FakePahoClient  # type: ignore[misc]


def deliver(client: Any, topic: str, payload: bytes) -> None:
    """Hand a received PUBLISH to HA's MQTT client, as paho's on_message would."""
    from paho.mqtt.client import MQTTMessage

    msg = MQTTMessage(topic=topic.encode())
    msg.payload = payload
    msg.qos = 0
    msg.retain = False
    msg.timestamp = time.monotonic()
    if hasattr(client, "_async_mqtt_on_message"):  # HA >= 2024.6: called in the loop
        client._async_mqtt_on_message(client._mqttc, None, msg)
    else:  # HA <= 2024.5: paho thread -> loop
        client._mqtt_handle_message(msg)


# ---------------------------------------------------------------------------------------------------------------
def read_messages(lines: list[str]) -> list[dict]:
    msgs = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m: dict = {"line": n, "errors": [], "warnings": [], "info": []}
        try:
            obj = json.loads(s)
            if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
                raise ValueError("not an object with a string 'topic'")
            payload = obj.get("payload", "")
            if not isinstance(payload, str):
                payload = json.dumps(payload)
            m.update(topic=obj["topic"], payload=payload, retain=bool(obj.get("retain", False)))
        except ValueError as err:
            m.update(topic=None, payload="", retain=False)
            m["errors"].append(f"input line {n} is not a message: {err}")
        msgs.append(m)
    return msgs


def is_discovery_topic(topic: str, prefix: str) -> bool:
    from paho.mqtt.client import topic_matches_sub

    return topic_matches_sub(f"{prefix}/+/+/config", topic) or topic_matches_sub(f"{prefix}/+/+/+/config", topic)


async def settle(hass: Any, mqtt_data: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for _ in range(3):
            await asyncio.sleep(0)
            await hass.async_block_till_done()
        pending = getattr(mqtt_data, "discovery_pending_discovered", {}) or {}
        if not pending or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


def entity_summary(hass: Any, entity: Any) -> dict:
    from homeassistant.helpers import device_registry as dr, entity_registry as er

    st = hass.states.get(entity.entity_id)
    entry = er.async_get(hass).async_get(entity.entity_id)
    device = dr.async_get(hass).async_get(entry.device_id) if entry and entry.device_id else None
    attrs = dict(st.attributes) if st else {}
    return {
        "entity_id": entity.entity_id,
        "state": st.state if st else None,
        "friendly_name": attrs.get("friendly_name"),
        "unit_of_measurement": attrs.get("unit_of_measurement"),
        "device_class": attrs.get("device_class"),
        "state_class": attrs.get("state_class"),
        "unique_id": entry.unique_id if entry else None,
        "device_name": (device.name_by_user or device.name) if device else None,
        "disabled_by": str(entry.disabled_by) if entry and entry.disabled_by else None,
    }


def mqtt_entities_by_topic(hass: Any) -> dict[str, Any]:
    from homeassistant.helpers import entity_platform

    found: dict[str, Any] = {}
    for platform in entity_platform.async_get_platforms(hass, "mqtt"):
        for entity in list(platform.entities.values()):
            data = getattr(entity, "_discovery_data", None) or {}
            if topic := data.get("discovery_topic"):
                found[topic] = entity
    return found


def numeric_expected(entity: Any) -> bool:
    try:
        from homeassistant.components import sensor
    except ImportError:
        return False
    if not isinstance(entity, sensor.SensorEntity):
        return False
    prop = getattr(type(entity), "_numeric_state_expected", None)
    if isinstance(prop, property):
        return bool(entity._numeric_state_expected)
    fn = getattr(sensor, "_numeric_state_expected", None)
    if fn is None:
        return False
    from homeassistant.util.enum import try_parse_enum

    return bool(
        fn(
            try_parse_enum(sensor.SensorDeviceClass, entity.device_class),
            entity.state_class,
            entity.native_unit_of_measurement,
            entity.suggested_display_precision,
        )
    )


async def run_sensor_checks(hass: Any, mqtt_data: Any, capture: Capture, entity: Any, m: dict) -> None:
    """Run SensorEntity.state -- where HA checks state_class vs device_class, unit vs device_class and numeric
    values -- on a sensor whose checks may not have run yet (unavailable, or no value). A sensor without a value
    that HA expects to be numeric gets the value 0 for the check; its messages are prefixed "[probe value 0]"."""
    try:
        from homeassistant.components.sensor import SensorEntity
    except ImportError:
        return
    if not isinstance(entity, SensorEntity):
        return
    st = hass.states.get(entity.entity_id)
    if st is not None and st.state != "unavailable" and getattr(entity, "_attr_native_value", None) is not None:
        return  # HA has written this state while available: its checks ran and reported then
    probed = getattr(entity, "_attr_native_value", None) is None and numeric_expected(entity)
    prefix = "[probe value 0] " if probed else "[sensor check] "
    try:
        if probed:
            entity._attr_native_value = 0
        entity.state  # noqa: B018 - the property runs HA's checks and logs what it finds
    except Exception as err:  # noqa: BLE001 - HA raises ValueError for impossible combinations
        if not any(str(err) in e for e in m["errors"]):  # not already reported by HA at entity setup
            m["errors"].append(f"{prefix}{type(err).__name__}: {err}")
    finally:
        if probed:
            entity._attr_native_value = None
    await settle(hass, mqtt_data)
    classify(capture.take_until_mark(f"probe-{m['line']}"), m, prefix=prefix)


async def validate(msgs: list[dict], prefix: str, probe: bool, verbose: bool) -> None:
    global LOOP, HA_VERSION
    LOOP = asyncio.get_running_loop()
    workdir = Path(tempfile.mkdtemp(prefix="meterrig-ha-validate-"))
    capture = Capture()
    root = logging.getLogger()
    root.addHandler(capture)  # before HA's setup: basicConfig then adds no stderr handler
    root.setLevel(logging.INFO)
    ha_common.install_noise_filters()
    try:
        from homeassistant import bootstrap, runner

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import ha_runner

        ha_runner.trim_default_integrations()
        nodes = {m["topic"].split("/")[-3] for m in msgs if m["topic"] and is_discovery_topic(m["topic"], prefix)}
        scale_log_rate_check(len(nodes))
        install_fake_transport()
        ha_common.write_configuration(workdir, http_port=ha_common.free_port(), api=False, bridge=False)
        ha_common.write_mqtt_entry(workdir, broker="fake-broker.invalid", port=1883, prefix=prefix)
        rc = runner.RuntimeConfig(
            config_dir=str(workdir), skip_pip=True, log_file=str(workdir / "home-assistant.log"), log_no_color=True
        )
        hass = await bootstrap.async_setup_hass(rc)
        if hass is None:
            raise RuntimeError("Home Assistant did not set up")
        await hass.async_start()
        mqtt_data = hass.data["mqtt"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            client = getattr(mqtt_data, "client", None)
            subs = {s.topic for s in (client.subscriptions if client else [])}
            # <= 2024.x: prefix/+/+/config; later releases subscribe per component: prefix/sensor/+/config, ...
            if client is not None and client.connected and any(
                t.startswith(f"{prefix}/") and t.endswith("/+/config") for t in subs
            ):
                break
            await asyncio.sleep(0.05)
        else:
            for r in capture.take_until_mark("startup-failed"):
                if r.levelno >= logging.WARNING:
                    print("startup: " + describe(r), file=sys.stderr)
            client = getattr(mqtt_data, "client", None)
            entries = [(e.domain, str(e.state), e.reason) for e in hass.config_entries.async_entries()]
            raise RuntimeError(
                "HA's MQTT client did not connect / subscribe to discovery: "
                f"entries={entries} connected={getattr(client, 'connected', None)} "
                f"subscriptions={sorted(s.topic for s in (client.subscriptions if client else []))}"
            )
        HA_VERSION = ha_common.ha_version()
        await settle(hass, mqtt_data)
        startup = capture.take_until_mark("startup-done")
        if verbose:
            for r in startup:
                if r.levelno >= logging.WARNING:
                    print("startup: " + describe(r), file=sys.stderr)
        if STARTUP is not None:
            classify(startup, STARTUP)

        configs = [m for m in msgs if m["topic"] and is_discovery_topic(m["topic"], prefix)]
        others = [m for m in msgs if m["topic"] and not is_discovery_topic(m["topic"], prefix)]
        for i, m in enumerate(configs + others):
            try:
                deliver(mqtt_data.client, m["topic"], m["payload"].encode())
                await settle(hass, mqtt_data)
            except Exception:  # noqa: BLE001 - HA raised into us: that is a finding too
                m["errors"].append("exception: " + traceback.format_exc().strip().splitlines()[-1])
            classify(capture.take_until_mark(f"msg-{i}"), m)

        by_topic = mqtt_entities_by_topic(hass)
        fed_states = {m["topic"] for m in others}
        for m in configs:
            entity = by_topic.get(m["topic"])
            if entity is None:
                m["entity"] = None
                component = m["topic"][len(prefix) + 1 :].split("/")[0]
                if m["payload"] and component not in ("device_automation", "tag"):
                    m["errors"].append("no entity was created from this config")
                continue
            m["entity"] = entity_summary(hass, entity)
            if probe:
                await run_sensor_checks(hass, mqtt_data, capture, entity, m)
        for m in others:
            m.setdefault("entity", None)
        await hass.async_stop()
    finally:
        root.removeHandler(capture)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", default="-", help="JSON lines file (default: stdin)")
    ap.add_argument("--prefix", default="homeassistant", help="discovery prefix (default homeassistant)")
    ap.add_argument("--no-probe", action="store_true", help="do not write 0 into numeric sensors without a state")
    ap.add_argument("--verbose", action="store_true", help="print HA's startup warnings on stderr")
    ap.add_argument("--startup", action="store_true",
                    help='first output line: what HA logged while starting, {"topic": null, "startup": true, ...}')
    args = ap.parse_args()
    global STARTUP
    if args.startup:
        STARTUP = {"errors": [], "warnings": [], "info": []}
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    msgs = read_messages(text.splitlines())
    try:
        asyncio.run(validate(msgs, args.prefix, not args.no_probe, args.verbose))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 2
    bad = False
    if STARTUP is not None:
        bad |= bool(STARTUP["errors"])
        print(json.dumps({"topic": None, "startup": True, "ok": not STARTUP["errors"], **STARTUP,
                          "ha_version": HA_VERSION}, ensure_ascii=False))
    for m in msgs:
        out = {
            "topic": m["topic"],
            "ok": not m["errors"],
            "errors": m["errors"],
            "warnings": m["warnings"],
            "info": m["info"],
            "entity": m.get("entity"),
        }
        bad |= bool(m["errors"])
        print(json.dumps(out, ensure_ascii=False))
    sys.stdout.flush()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
