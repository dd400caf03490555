#!/usr/bin/env python3
"""Checks validate_discovery.py against samples/mixed.jsonl (good and bad payloads, states).

    target/home-assistant/venv-2024.3.3/bin/python ci/home-assistant/test_validate_discovery.py [--current]

Prints one line per check and "N passed, M failed"; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--current", action="store_true", help="run under HA 2026.2.3 (current.sh)")
    args = ap.parse_args()
    sample = HERE / "samples" / "mixed.jsonl"
    cmd = [str(HERE / "current.sh"), "validate_discovery.py", str(sample)] if args.current else [
        sys.executable, str(HERE / "validate_discovery.py"), str(sample)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.monotonic() - t0
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    passed = failed = 0

    def check(name: str, ok: bool, detail: object = "") -> None:
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f"  -- {detail}"), flush=True)

    check("exit status 1 (there are errors)", proc.returncode == 1, (proc.returncode, proc.stderr[-2000:]))
    check("one output line per message", len(out) == 11, len(out))
    if len(out) != 11:
        print(f"{passed} passed, {failed} failed")
        return 1
    flow, temp, mass, go, bad, gizmo, broken, conn, j1, jn, t = out
    check("good sensor ok, state from the template", flow["ok"] and flow["entity"]["state"] == "1.25", flow)
    check("good sensor: entity_id / friendly name / unique_id / device",
          flow["entity"]["entity_id"] == "sensor.node1_flow" and flow["entity"]["friendly_name"] == "node1 Flow"
          and flow["entity"]["unique_id"] == "node1_flow" and flow["entity"]["device_name"] == "node1", flow)
    check("state_class impossible for device_class -> warning",
          temp["ok"] and any("impossible considering device class" in w for w in temp["warnings"]), temp)
    check("dev without name -> HA's info note",
          any("always needs to include a name" in i for i in temp["info"]), temp["info"])
    unit_warned = any("not a valid unit" in w for w in mass["warnings"])
    unit_rejected = any("not valid together with device class" in e for e in mass["errors"])
    check("unit invalid for device_class -> warning (2024.3, probe) or schema error (newer)",
          unit_warned or unit_rejected, mass)
    check("button ok", go["ok"] and go["entity"]["entity_id"] == "button.node1_go", go)
    check("unknown device_class -> schema error, no entity",
          not bad["ok"] and any("device_class" in e for e in bad["errors"]) and bad["entity"] is None, bad)
    check("unsupported component -> error", not gizmo["ok"], gizmo)
    check("payload not JSON -> HA's warning + error",
          not broken["ok"] and any("Unable to parse JSON" in w for w in broken["warnings"]), broken)
    check("state messages ok", conn["ok"] and j1["ok"] and t["ok"], (conn, j1, t))
    check("'N' on a numeric sensor -> HA's ValueError as error",
          not jn["ok"] and any("non-numeric value" in e for e in jn["errors"]), jn)
    print(f"     validate_discovery.py took {took:.1f} s (HA start included)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
