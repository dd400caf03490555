"""Shared helpers for the Home Assistant oracle: config directory seeding, free ports.

Used by validate_discovery.py (in-process HA, fake MQTT transport) and live_ha.py (a real `hass` process on a
real broker). Everything that can be done with Home Assistant's own code is (the auth store and the long-lived
access token are created by HA's AuthManager); only the MQTT config entry is written as JSON, because that is
exactly what the UI config flow stores and the flow itself needs a reachable broker and a user.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
BRIDGE_SRC = HERE / "custom_components" / "meterrig_bridge"
TOKEN_FILE = ".meterrig/token"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Startup notices about this harness itself, not about anything a device published: dropped so that "no WARNING
# in the log" can be asserted. Nothing else is filtered.
NOISE = {
    "homeassistant.loader": ("We found a custom integration meterrig_bridge",),
    "homeassistant.bootstrap": (
        "Skipping pip installation of required modules",
        "Support for the running Python version",
    ),
}


def install_noise_filters() -> None:
    import logging

    for name, prefixes in NOISE.items():

        def keep(record: logging.LogRecord, prefixes: tuple[str, ...] = prefixes) -> bool:
            return not record.getMessage().startswith(prefixes)

        logging.getLogger(name).addFilter(keep)


LOG_RECORD_START = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (DEBUG|INFO|WARNING|ERROR|CRITICAL) \(([^)]*)\) \[([^\]]+)\] "


def parse_log(text: str) -> list[dict]:
    """HA's log text -> records {time, level, thread, logger, message}; a record's continuation lines (a
    traceback) are part of its message; live_ha's `==== live_ha: ...` marker lines are skipped."""
    import re

    start = re.compile(LOG_RECORD_START)
    records: list[dict] = []
    for line in text.splitlines():
        m = start.match(line)
        if m:
            records.append(
                {"time": m[1], "level": m[2], "thread": m[3], "logger": m[4], "message": line[m.end():]}
            )
        elif line.startswith("==== live_ha:"):
            continue
        elif records:
            records[-1]["message"] += "\n" + line
    return records


def ha_version() -> str:
    from homeassistant.const import __version__

    return __version__


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML flow scalar


def write_configuration(
    config_dir: Path,
    *,
    http_port: int,
    api: bool = True,
    bridge: bool = False,
    birth_topic: str = "homeassistant/status",
    log_default: str = "info",
) -> None:
    """configuration.yaml with only what the MQTT oracle needs: no default_config, no recorder, no frontend,
    no analytics / updater / network discovery, a fixed location so nothing is looked up on the internet."""
    lines = [
        "homeassistant:",
        "  name: meterrig-hil",
        "  latitude: 52.3731",
        "  longitude: 4.8922",
        "  elevation: 0",
        "  unit_system: metric",
        "  time_zone: UTC",
        "  country: NL",
        "  currency: EUR",
        "  language: en",
        f"  internal_url: {_yaml_str(f'http://127.0.0.1:{http_port}')}",
        "http:",
        "  server_host: 127.0.0.1",
        f"  server_port: {http_port}",
        "logger:",
        f"  default: {log_default}",
    ]
    if api:
        lines.append("api:")
    if bridge:
        lines += ["meterrig_bridge:", f"  birth_topic: {_yaml_str(birth_topic)}"]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text("\n".join(lines) + "\n")


def mqtt_entry_versions() -> tuple[int, int]:
    """(VERSION, MINOR_VERSION) of the installed MQTT config flow."""
    from homeassistant.components.mqtt import config_flow

    flow = config_flow.FlowHandler
    return getattr(flow, "VERSION", 1), getattr(flow, "MINOR_VERSION", 1)


def write_mqtt_entry(
    config_dir: Path,
    *,
    broker: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    prefix: str = "homeassistant",
    client_id: str | None = None,
) -> None:
    """`.storage/core.config_entries` with one MQTT entry, as the UI config flow would have stored it.

    Up to 2024.x the flow stored broker, discovery and birth / will settings all in `data`; later releases keep
    the broker in `data` and discovery / birth / will in `options` (config entry version 1, minor 2). Both layouts
    are written as the installed release expects.
    """
    version, minor = mqtt_entry_versions()
    data: dict = {"broker": broker, "port": port}
    if username is not None:
        data["username"] = username
    if password is not None:
        data["password"] = password
    if client_id:
        data["client_id"] = client_id
    behaviour = {
        "discovery": True,
        "discovery_prefix": prefix,
        "birth_message": {"topic": f"{prefix}/status", "payload": "online", "qos": 0, "retain": False},
        "will_message": {"topic": f"{prefix}/status", "payload": "offline", "qos": 0, "retain": False},
    }
    options: dict = {}
    if (version, minor) >= (1, 2):
        options = behaviour
    else:
        data.update(behaviour)
    entry = {
        "entry_id": "meterrigmqtt" + uuid.uuid5(uuid.NAMESPACE_URL, "meterrig-mqtt").hex[:20],
        "version": version,
        "minor_version": minor,
        "domain": "mqtt",
        "title": broker,
        "data": data,
        "options": options,
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / "core.config_entries"
    doc = {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}}
    if path.exists():  # keep what HA itself stored (its storage minor version, other entries)
        try:
            old = json.loads(path.read_text())
            doc["minor_version"] = old.get("minor_version", 1)
            others = [e for e in old.get("data", {}).get("entries", []) if e.get("domain") != "mqtt"]
            doc["data"]["entries"] = others + [entry]
        except ValueError:
            pass
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


def install_bridge(config_dir: Path) -> None:
    """Copy the meterrig_bridge custom integration into <config>/custom_components."""
    dest = config_dir / "custom_components" / "meterrig_bridge"
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(BRIDGE_SRC, dest, ignore=shutil.ignore_patterns("__pycache__"))


async def _seed_auth(config_dir: Path) -> str:
    """Create an admin user and a 10-year long-lived access token with HA's own AuthManager; returns the token."""
    from datetime import timedelta

    from homeassistant import auth
    from homeassistant.auth import models
    from homeassistant.auth.const import GROUP_ID_ADMIN
    from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
    from homeassistant.core import HomeAssistant

    try:
        hass = HomeAssistant(str(config_dir))
    except TypeError:  # very old / very new signatures
        hass = HomeAssistant(config_dir=str(config_dir))
    # The auth store looks at the device / entity registries while loading.
    from homeassistant.helpers import device_registry as dr, entity_registry as er

    await dr.async_load(hass)
    await er.async_load(hass)
    manager = await auth.auth_manager_from_config(hass, [], [])
    user = await manager.async_create_user("meterrig-hil", group_ids=[GROUP_ID_ADMIN])
    refresh = await manager.async_create_refresh_token(
        user,
        client_name="meterrig-hil",
        token_type=models.TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=3650),
    )
    token = manager.async_create_access_token(refresh)
    # Stores write on the final-write event (what a normal shutdown fires).
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    if not (config_dir / ".storage" / "auth").exists():
        raise RuntimeError("HA did not write .storage/auth")
    return token


def ensure_token(config_dir: Path) -> str:
    """The long-lived access token of <config_dir>, seeding the auth store on first use."""
    import asyncio

    token_path = config_dir / TOKEN_FILE
    if token_path.exists() and (config_dir / ".storage" / "auth").exists():
        return token_path.read_text().strip()
    token = asyncio.run(_seed_auth(config_dir))
    token_path.parent.mkdir(parents=True, exist_ok=True)
    token_path.write_text(token + "\n")
    os.chmod(token_path, 0o600)
    return token
