#!/usr/bin/env python3
"""`python -m homeassistant`, minus the integrations HA sets up on every start whatever configuration.yaml says.

Since 2023.x HA's bootstrap always adds DEFAULT_INTEGRATIONS (frontend, backup, hardware, network, person,
automation, the input_* helpers, ...) and drops into recovery mode when a CRITICAL_INTEGRATIONS member
(frontend) fails. None of them takes part in MQTT discovery, but they need extra packages (the 30 MB frontend,
Pillow, psutil, ...) and seconds of startup. This runner empties those two sets (keeping `logger`) and then runs
HA's own entry point unchanged, so HA loads exactly what configuration.yaml and the config entries ask for:
homeassistant, persistent_notification, logger, system_log, http, api, file_upload, mqtt and the MQTT platforms.
Set METERRIG_HA_FULL=1 to run HA's default set (then those packages must be installed).
"""

from __future__ import annotations

import os
import sys


def trim_default_integrations() -> None:
    if os.environ.get("METERRIG_HA_FULL") == "1":
        return
    from homeassistant import bootstrap

    for name in ("DEFAULT_INTEGRATIONS", "DEFAULT_INTEGRATIONS_RECOVERY_MODE", "CRITICAL_INTEGRATIONS"):
        value = getattr(bootstrap, name, None)
        if isinstance(value, set):
            keep = value & {"logger"}
            value.clear()
            value.update(keep)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import ha_common

    ha_common.install_noise_filters()
    trim_default_integrations()
    from homeassistant.__main__ import main

    sys.exit(main())
