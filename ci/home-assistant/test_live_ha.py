#!/usr/bin/env python3
"""End-to-end test of live_ha.py against a real mosquitto: discovery, states, availability, a button press, HA's
log, restarts. Run with the venv's Python (for live_ha.py); needs mosquitto + mosquitto_pub/_sub on PATH
(`apt-get install -y mosquitto mosquitto-clients`).

    target/home-assistant/venv-2024.3.3/bin/python ci/home-assistant/test_live_ha.py [--current]

Prints one line per check and a closing "N passed, M failed"; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ha_common  # noqa: E402

PASSED: list[str] = []
FAILED: list[str] = []


def check(name: str, ok: bool, detail: object = "") -> bool:
    (PASSED if ok else FAILED).append(name)
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  -- {detail}" if detail != "" and not ok else ""), flush=True)
    return ok


class Live:
    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.info: dict = {}

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(json.loads(line))
                self.cv.notify_all()

    def next_event(self, timeout: float = 120.0) -> dict | None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not self.lines:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)
            ev = self.lines.pop(0)
        if ev.get("event") == "ready":
            self.info = ev
        return ev

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def api(self, method: str, path: str, body: object | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.info["url"] + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.info['token']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read().decode() or "null")

    def entity(self, entity_id: str) -> dict | None:
        for e in self.api("GET", "/api/meterrig/entities?platform=mqtt"):
            if e["entity_id"] == entity_id:
                return e
        return None

    def wait_state(self, entity_id: str, want: str, timeout: float = 15.0) -> dict | None:
        deadline = time.monotonic() + timeout
        e = None
        while time.monotonic() < deadline:
            e = self.entity(entity_id)
            if e is not None and e["state"] == want:
                return e
            time.sleep(0.1)
        return e

    def log_lines(self) -> list[str]:
        """HA's WARNING / ERROR / CRITICAL records (with their tracebacks) from the log file."""
        records = ha_common.parse_log(Path(self.info["log"]).read_text(errors="replace"))
        return [
            f"{r['time']} {r['level']} [{r['logger']}] {r['message']}"
            for r in records
            if r["level"] in ("WARNING", "ERROR", "CRITICAL")
        ]


def pub(port: int, topic: str, payload: str, retain: bool = True) -> None:
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-m", payload]
    if retain:
        cmd.append("-r")
    subprocess.run(cmd, check=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--current", action="store_true", help="run HA 2026.2.3 from the trixie chroot (current.sh)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} missing: apt-get install -y mosquitto mosquitto-clients")
            return 1
    work = Path(tempfile.mkdtemp(prefix="meterrig-ha-e2e-"))
    port = ha_common.free_port()
    (work / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\n"
    )
    mosq_bin = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    mosq_log = open(work / "mosquitto.log", "w")  # noqa: SIM115
    mosq = subprocess.Popen([mosq_bin, "-c", str(work / "mosquitto.conf")], stderr=mosq_log)
    time.sleep(0.3)
    sub_out = open(work / "sub.txt", "w")  # noqa: SIM115
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-v", "-t", "test/meter/ctrl/#", "-t",
         "homeassistant/status"],
        stdout=sub_out,
    )
    if args.current:  # config dir: a temp dir inside the chroot, removed by live_ha.py at exit
        cmd = [str(HERE / "current.sh"), "live_ha.py", "--broker", f"127.0.0.1:{port}"]
    else:
        cmd = [sys.executable, str(HERE / "live_ha.py"), "--broker", f"127.0.0.1:{port}", "--config-dir", str(work / "ha")]
    t0 = time.monotonic()
    live = Live(cmd)
    try:
        ev = live.next_event(180)
        if not check("HA ready line", ev is not None and ev.get("event") == "ready", ev):
            return 1
        print(f"     ready after {time.monotonic() - t0:.1f} s (HA {ev['ha_version']}, startup {ev['startup_seconds']} s)")
        check("ready line has url, token, log, pid", all(k in ev for k in ("url", "token", "log", "pid")))
        st = live.api("GET", "/api/meterrig/status")
        check("status: mqtt connected, birth seen", st["mqtt_connected"] and st["birth_seen"], st)

        sensor_cfg = {
            "~": "test/meter",
            "name": "Flow",
            "stat_t": "~/json",
            "val_tpl": "{{ value_json.flow }}",
            "unit_of_meas": "m³/h",
            "dev_cla": "volume_flow_rate",
            "stat_cla": "measurement",
            "avty_t": "~/connection",
            "uniq_id": "testnode_flow",
            "dev": {"ids": ["testnode"], "name": "testnode", "mf": "meterrig", "mdl": "virtual", "sw": "1.0"},
        }
        button_cfg = {
            "~": "test/meter",
            "name": "Go",
            "cmd_t": "~/ctrl/go",
            "pl_prs": "1",
            "avty_t": "~/connection",
            "uniq_id": "testnode_go",
            "dev": {"ids": ["testnode"]},
        }
        pub(port, "test/meter/connection", "online")
        pub(port, "test/meter/json", json.dumps({"flow": 1.5}))
        pub(port, "homeassistant/sensor/testnode/flow/config", json.dumps(sensor_cfg))
        pub(port, "homeassistant/button/testnode/go/config", json.dumps(button_cfg))

        e = live.wait_state("sensor.testnode_flow", "1.5")
        check("sensor appears with the templated state 1.5", e is not None and e["state"] == "1.5", e)
        if e:
            check("sensor unit m³/h", e["unit_of_measurement"] == "m³/h", e["unit_of_measurement"])
            check("sensor device_class", e["device_class"] == "volume_flow_rate", e["device_class"])
            check("sensor friendly_name 'testnode Flow'", e["friendly_name"] == "testnode Flow", e["friendly_name"])
            check("sensor unique_id", e["unique_id"] == "testnode_flow", e["unique_id"])
            check("device name / manufacturer", (e["device"] or {}).get("name") == "testnode"
                  and (e["device"] or {}).get("manufacturer") == "meterrig", e["device"])
        b = live.wait_state("button.testnode_go", "unknown")
        check("button appears (state unknown, never pressed)", b is not None and b["state"] == "unknown", b)
        states = {s["entity_id"]: s for s in live.api("GET", "/api/states")}
        check("HA's own /api/states has the sensor", states.get("sensor.testnode_flow", {}).get("state") == "1.5")

        pub(port, "test/meter/connection", "offline")
        e = live.wait_state("sensor.testnode_flow", "unavailable")
        b = live.wait_state("button.testnode_go", "unavailable")
        check("availability offline -> sensor unavailable", e is not None and e["state"] == "unavailable", e)
        check("availability offline -> button unavailable", b is not None and b["state"] == "unavailable", b)
        pub(port, "test/meter/connection", "online")
        e = live.wait_state("sensor.testnode_flow", "1.5")
        check("availability online -> state back", e is not None and e["state"] == "1.5", e)

        live.api("POST", "/api/services/button/press", {"entity_id": "button.testnode_go"})
        deadline = time.monotonic() + 5
        seen = ""
        while time.monotonic() < deadline:
            sub_out.flush()
            seen = (work / "sub.txt").read_text()
            if "test/meter/ctrl/go 1" in seen:
                break
            time.sleep(0.1)
        check("button press publishes '1' on test/meter/ctrl/go", "test/meter/ctrl/go 1" in seen, seen)
        b = live.entity("button.testnode_go")
        check("button state is the press time", b is not None and b["state"] not in ("unknown", "unavailable"), b)
        check("HA's birth message seen by mosquitto_sub", "homeassistant/status online" in seen, seen)

        before = len(live.log_lines())
        pub(port, "test/meter/json", json.dumps({"flow": "N"}))
        deadline = time.monotonic() + 5
        new: list[str] = []
        while time.monotonic() < deadline:
            new = live.log_lines()[before:]
            if any("non-numeric value: 'N'" in line for line in new):
                break
            time.sleep(0.1)
        for rec in new:  # first line and last line (the exception) of each record
            lines = rec.splitlines()
            print("     HA logged: " + lines[0] + ("\n       ... " + lines[-1] if len(lines) > 1 else ""))
        check("state 'N' on a numeric sensor -> HA's ValueError in the log",
              any("non-numeric value: 'N'" in line for line in new), new)

        pub(port, "test/meter/json", json.dumps({"flow": 2.25}))
        live.wait_state("sensor.testnode_flow", "2.25")
        live.send("restart")
        ev = live.next_event(180)
        check("stdin 'restart' -> new ready line", ev is not None and ev.get("event") == "ready" and ev["start"] == 2, ev)
        if ev and ev.get("event") == "ready":
            print(f"     restart ready, startup {ev['startup_seconds']} s")
        e = live.wait_state("sensor.testnode_flow", "2.25")
        check("after restart: same entity_id (registry kept), retained state", e is not None and e["state"] == "2.25", e)

        live.api("POST", "/api/services/homeassistant/restart", {})
        ev = live.next_event(180)
        check("service homeassistant.restart -> new ready line", ev is not None and ev.get("event") == "ready"
              and ev["start"] == 3, ev)

        live.send("stop")
        ev = live.next_event(60)
        check("stdin 'stop' -> stopped", ev is not None and ev.get("event") == "stopped", ev)
        live.send("start")
        ev = live.next_event(180)
        check("stdin 'start' -> ready", ev is not None and ev.get("event") == "ready", ev)

        warnings = [line for line in live.log_lines() if "non-numeric value" not in line]
        check("no other WARNING/ERROR in HA's log", not warnings, "\n".join(warnings))

        ha_pid = live.info.get("ha_pid")
        live.proc.send_signal(signal.SIGTERM)
        ev = live.next_event(60)
        live.proc.wait(60)
        check("SIGTERM -> final stopped line, exit 0", ev is not None and ev.get("final") and live.proc.returncode == 0,
              (ev, live.proc.returncode))
        alive = ha_pid is not None and Path(f"/proc/{ha_pid}").exists()
        check("HA process gone", not alive)
    finally:
        if live.proc.poll() is None:
            live.proc.terminate()
            live.proc.wait(60)
        sub.terminate()
        mosq.terminate()
        sub.wait()
        mosq.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
