"""meterrig HIL bridge: two read-only REST views for the Rust rig (same bearer token as HA's own REST API).

GET /api/meterrig/status    readiness: HA running, MQTT connected, HA's own birth message seen on the broker
GET /api/meterrig/entities  every entity with its state, attributes, registry entry (unique_id, platform) and
                            device (name, identifiers, ...); `?domain=sensor`, `?platform=mqtt`,
                            `?include_disabled=1` (registry entries without a state) filter / extend the list
GET /api/meterrig/ping?token=T
                            {"seen": true} once a message with payload T arrived on the ping topic
                            (`meterrig-bridge/ping`): a barrier. HA handles MQTT messages in the order the broker
                            delivers them, so when T was seen, every message the broker took before T was handled
                            (states written, errors logged)

Nothing here changes HA's behaviour: it only reads the state machine and the registries, and subscribes to the
birth topic so readiness means "HA started, MQTT connected, discovery subscribed and cooled down" (HA publishes
its birth message only after that).
"""

from __future__ import annotations

import collections
import time
from typing import Any

import voluptuous as vol

from homeassistant.components.http import HomeAssistantView
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
import homeassistant.helpers.config_validation as cv

DOMAIN = "meterrig_bridge"

PING_TOPIC = "meterrig-bridge/ping"

CONFIG_SCHEMA = vol.Schema(
    {
        DOMAIN: vol.Schema(
            {
                vol.Optional("birth_topic", default="homeassistant/status"): cv.string,
                vol.Optional("ping_topic", default=PING_TOPIC): cv.string,
            }
        )
    },
    extra=vol.ALLOW_EXTRA,
)


async def async_setup(hass: HomeAssistant, config: dict) -> bool:
    conf = config.get(DOMAIN) or {}
    state: dict[str, Any] = {
        "birth_topic": conf.get("birth_topic", "homeassistant/status"),
        "birth_seen": False,
        "birth_at": None,
        "setup_at": time.time(),
        "ping_topic": conf.get("ping_topic", PING_TOPIC),
        "pings": collections.deque(maxlen=1000),
    }
    hass.data[DOMAIN] = state
    hass.http.register_view(StatusView())
    hass.http.register_view(EntitiesView())
    hass.http.register_view(PingView())

    async def watch_birth() -> None:
        from homeassistant.components import mqtt

        if not await mqtt.async_wait_for_mqtt_client(hass):
            return

        @callback
        def on_status(msg: Any) -> None:
            payload = msg.payload.decode() if isinstance(msg.payload, bytes) else msg.payload
            if payload == "online":
                state["birth_seen"] = True
                state["birth_at"] = time.time()
            elif payload == "offline":
                state["birth_seen"] = False

        await mqtt.async_subscribe(hass, state["birth_topic"], on_status)

        @callback
        def on_ping(msg: Any) -> None:
            payload = msg.payload.decode(errors="replace") if isinstance(msg.payload, bytes) else msg.payload
            state["pings"].append(payload)

        await mqtt.async_subscribe(hass, state["ping_topic"], on_ping)

    if hasattr(hass, "async_create_background_task"):
        hass.async_create_background_task(watch_birth(), "meterrig_bridge_birth")
    else:  # pragma: no cover - very old cores
        hass.async_create_task(watch_birth())
    return True


def _mqtt_connected(hass: HomeAssistant) -> bool:
    try:
        from homeassistant.components import mqtt

        return bool(mqtt.is_connected(hass))
    except Exception:  # noqa: BLE001 - not set up (yet)
        return False


class StatusView(HomeAssistantView):
    url = "/api/meterrig/status"
    name = "api:meterrig:status"

    async def get(self, request):  # noqa: ANN001
        hass: HomeAssistant = request.app["hass"]
        state = hass.data[DOMAIN]
        core_state = str(getattr(hass.state, "value", hass.state))
        connected = _mqtt_connected(hass)
        return self.json(
            {
                "ha_version": HA_VERSION,
                "state": core_state,
                "mqtt_connected": connected,
                "birth_seen": state["birth_seen"],
                "ready": core_state == "RUNNING" and connected and state["birth_seen"],
            }
        )


class PingView(HomeAssistantView):
    url = "/api/meterrig/ping"
    name = "api:meterrig:ping"

    async def get(self, request):  # noqa: ANN001
        hass: HomeAssistant = request.app["hass"]
        token = request.query.get("token", "")
        return self.json({"token": token, "seen": token in hass.data[DOMAIN]["pings"]})


def _device_json(device: Any) -> dict[str, Any] | None:
    if device is None:
        return None
    return {
        "id": device.id,
        "name": device.name_by_user or device.name,
        "identifiers": sorted([list(i) for i in device.identifiers]),
        "connections": sorted([list(c) for c in device.connections]),
        "manufacturer": device.manufacturer,
        "model": device.model,
        "sw_version": device.sw_version,
        "hw_version": device.hw_version,
        "serial_number": getattr(device, "serial_number", None),
        "configuration_url": device.configuration_url,
        "via_device_id": device.via_device_id,
    }


class EntitiesView(HomeAssistantView):
    url = "/api/meterrig/entities"
    name = "api:meterrig:entities"

    async def get(self, request):  # noqa: ANN001
        hass: HomeAssistant = request.app["hass"]
        domain = request.query.get("domain")
        platform = request.query.get("platform")
        include_disabled = request.query.get("include_disabled") in ("1", "true", "yes")
        ent_reg = er.async_get(hass)
        dev_reg = dr.async_get(hass)
        out: dict[str, dict[str, Any]] = {}

        def add(entity_id: str, st: Any, entry: Any) -> None:
            if domain and entity_id.split(".", 1)[0] != domain:
                return
            if platform and (entry is None or entry.platform != platform):
                return
            attrs = dict(st.attributes) if st is not None else {}
            device = dev_reg.async_get(entry.device_id) if entry is not None and entry.device_id else None
            out[entity_id] = {
                "entity_id": entity_id,
                "state": st.state if st is not None else None,
                "attributes": attrs,
                "friendly_name": attrs.get("friendly_name"),
                "unit_of_measurement": attrs.get("unit_of_measurement"),
                "device_class": attrs.get("device_class"),
                "state_class": attrs.get("state_class"),
                "icon": attrs.get("icon"),
                "last_changed": st.last_changed.isoformat() if st is not None else None,
                "last_updated": st.last_updated.isoformat() if st is not None else None,
                "unique_id": entry.unique_id if entry is not None else None,
                "platform": entry.platform if entry is not None else None,
                "original_name": entry.original_name if entry is not None else None,
                "has_entity_name": getattr(entry, "has_entity_name", None) if entry is not None else None,
                "entity_category": (
                    str(getattr(entry.entity_category, "value", entry.entity_category))
                    if entry is not None and entry.entity_category
                    else None
                ),
                "disabled_by": (
                    str(getattr(entry.disabled_by, "value", entry.disabled_by))
                    if entry is not None and entry.disabled_by
                    else None
                ),
                "device": _device_json(device),
            }

        for st in hass.states.async_all():
            add(st.entity_id, st, ent_reg.async_get(st.entity_id))
        if include_disabled:
            for entry in list(ent_reg.entities.values()):
                if entry.entity_id not in out and hass.states.get(entry.entity_id) is None:
                    add(entry.entity_id, None, entry)
        return self.json([out[k] for k in sorted(out)])
