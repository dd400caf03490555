#!/usr/bin/env python3
"""Record what live virtual boards publish for Home Assistant: validate_discovery.py input, taken from the firmware
as it runs on the rig, not from snapshots.

    target/home-assistant/venv-2024.3.3/bin/python ci/home-assistant/capture_live.py \
        --hil target/release/hil --board target/release/virtual-board --out DIR

The rig's embedded broker (`hil broker`) and one `virtual-board` per variant (`--limits host`: the host's clock,
synchronized from the start). Variants: every config in fixtures/configs/ (discovery turned on where the fixture
has it off, so its sequences and pins are judged too), and fixtures/configs/ha-json-topics.json with
`mqtt.homeassistant.metertype` 0..10, each once as configured and once with `allownegativerate` on every sequence
(decision 51 changes state classes then). Each variant gets its own main topic `meterrig-ha/<variant>`, so its node
id, unique ids and HA device are its own and all variants go to one Home Assistant together.

Each board: online, a cycle without frames (every ROI reads N: values empty, value_status E90), frames for every
sequence and a cycle with numbers, a later reading and a cycle (a rate; a negative one where allownegativerate is
on), then quiet for 0.7 s. Recorded: every discovery config (the last payload per
config topic) and every message under the main topic in the order the broker delivered them.

Output: DIR/<variant>.jsonl and DIR/all.jsonl, one {"topic", "payload", "retain", "variant"} a line, discovery
configs first; on stdout a summary; exit 1 when a board did not come up or published no discovery config.
Needs paho-mqtt (the HA venv has it).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[2]
IDLE = ("Idle - No Autostart", "Idle - Waiting For Autostart")
PREFIX = "homeassistant"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def variants(configs_dir: Path) -> list[tuple[str, dict, str]]:
    """(name, config, what) for every board to run."""
    out = []
    for path in sorted(configs_dir.glob("*.json")):
        config = json.loads(path.read_text())
        ha = config.get("mqtt", {}).get("homeassistant", {})
        what = f"fixtures/configs/{path.name}"
        if not ha.get("discoveryenabled"):
            what += " (discovery turned on)"
        out.append((path.stem, config, what))
    base = json.loads((configs_dir / "ha-json-topics.json").read_text())
    for metertype in range(11):
        for negative in (False, True):
            config = copy.deepcopy(base)
            config["mqtt"]["homeassistant"]["metertype"] = metertype
            name = f"metertype{metertype:02d}"
            what = f"ha-json-topics.json, metertype {metertype}"
            if negative:
                for seq in config.get("postprocessing", {}).get("sequence", []):
                    seq["allownegativerate"] = True
                name += "-negative"
                what += ", allownegativerate"
            out.append((name, config, what))
    return out


def board_config(config: dict, name: str, port: int) -> dict:
    c = copy.deepcopy(config)
    m = c.setdefault("mqtt", {})
    m.update(enabled=True, uri=f"mqtt://127.0.0.1:{port}", maintopic=f"meterrig-ha/{name}", clientid=f"ha-{name}")
    ha = m.setdefault("homeassistant", {})
    ha["discoveryenabled"] = True
    ha["discoveryprefix"] = PREFIX
    ha.setdefault("statustopic", f"{PREFIX}/status")
    ha["retaindiscovery"] = True
    return c


def frames(config: dict, bump: int = 0) -> list[str]:
    """One console `frame` line per sequence, with as many digits and pointers as it has ROIs; `bump` moves the
    last digit (a later reading: a rate)."""
    def rois(section: str) -> dict[int, int]:
        return {s["sequenceid"]: len(s.get("roi", [])) for s in config.get(section, {}).get("sequence", [])}

    digits, analogs = rois("digit"), rois("analog")
    lines = []
    for seq in config.get("numbersequences", {}).get("sequence", []):
        sid = seq["sequenceid"]
        n = digits.get(sid, 0)
        # 2,5,8,1,4,... and a 5 last: it can go one up or down without wrapping.
        d = ",".join(str(5 + bump if i == n - 1 else (i * 3 + 2) % 10) for i in range(n))
        a = ",".join(f"{(i * 2 + 5) % 10}.5" for i in range(analogs.get(sid, 0)))
        lines.append(f"frame {seq['sequencename']} digits={d} analogs={a}")
    return lines


class Recorder:
    """Everything the broker delivers on `#`, in order."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[float, str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(client_id=f"meterrig-ha-capture-{os.getpid()}", clean_session=True)
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the recorder could not subscribe")

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload), bool(msg.retain)))

    def under(self, prefix: str) -> list[tuple[float, str, bytes, bool]]:
        with self.lock:
            return [m for m in self.messages if m[1].startswith(prefix)]

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Board:
    def __init__(self, exe: Path, name: str, config: dict, workdir: Path) -> None:
        self.name = name
        state = workdir / name
        state.mkdir(parents=True, exist_ok=True)
        (workdir / f"{name}.json").write_text(json.dumps(config))
        self.log = state / "board-stderr.log"
        self.proc = subprocess.Popen(
            [str(exe), "--state-dir", str(state), "--config", str(workdir / f"{name}.json"), "--limits", "host"],
            stdout=subprocess.PIPE, stderr=open(self.log, "wb"), stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        try:
            self.ready = json.loads(line)
        except ValueError:
            self.kill()
            raise RuntimeError(f"{name}: no ready line ({line!r}); see {self.log}") from None
        self.tty = os.open(self.ready["serial"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.buf = b""

    def console(self, line: str, timeout: float = 10.0) -> str:
        os.write(self.tty, line.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                text = raw.decode(errors="replace").strip()
                if text.startswith("ok") or text.startswith("err "):
                    return text
            r, _, _ = select.select([self.tty], [], [], 0.1)
            if r:
                try:
                    self.buf += os.read(self.tty, 65536)
                except BlockingIOError:
                    pass
        raise RuntimeError(f"{self.name}: no console reply to {line!r}")

    def kill(self) -> None:
        if getattr(self, "tty", None) is not None:
            os.close(self.tty)
            self.tty = None
        self.proc.kill()
        self.proc.wait()


def wait(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out: {what}")


def run_variant(exe: Path, rec: Recorder, port: int, name: str, config: dict, workdir: Path) -> list[dict]:
    config = board_config(config, name, port)
    main = config["mqtt"]["maintopic"]
    board = Board(exe, name, config, workdir)
    try:
        wait(lambda: any(t == f"{main}/device/status/connection" and p == b"online"
                         for _, t, p, _ in rec.under(main)), 20, f"{name} online")

        def cycle() -> None:
            counter = f"{main}/process/status/cycle_counter"
            before = sum(1 for _, t, _, _ in rec.under(main) if t == counter)
            rec.publish(f"{main}/process/ctrl/cycle_start", "1")

            def done() -> bool:
                msgs = rec.under(main)
                counts = [i for i, m in enumerate(msgs) if m[1] == counter]
                if len(counts) <= before:
                    return False
                return any(m[1] == f"{main}/process/status/process_state" and m[2].decode() in IDLE
                           for m in msgs[counts[-1]:])
            wait(done, 30, f"{name}: a cycle")

        cycle()  # no frame yet: every ROI reads N
        negative = any(s.get("allownegativerate") for s in config.get("postprocessing", {}).get("sequence", []))
        for bump in (0, -1 if negative else 1):  # a reading, then a later one: rates, negative where allowed
            for line in frames(config, bump):
                reply = board.console(line)
                if not reply.startswith("ok"):
                    raise RuntimeError(f"{name}: {line!r} -> {reply}")
            cycle()
        # Quiet: whatever was requested meanwhile has run.
        while True:
            last = max((m[0] for m in rec.under(main)), default=0.0)
            if time.monotonic() - last > 0.7:
                break
            time.sleep(0.1)
    finally:
        board.kill()
    node = main.rsplit("/", 1)[-1]
    configs: dict[str, bytes] = {}
    for _, topic, payload, _ in rec.under(f"{PREFIX}/"):
        parts = topic.split("/")
        if len(parts) == 5 and parts[2] == node and parts[4] == "config":
            configs[topic] = payload
    out = [{"topic": t, "payload": p.decode(), "retain": True, "variant": name} for t, p in sorted(configs.items())]
    states = [m for m in rec.under(f"{main}/") if m[0] <= last]
    out += [{"topic": t, "payload": p.decode(errors="replace"), "retain": r, "variant": name}
            for _, t, p, r in states]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hil", required=True, help="the rig's binary (target/release/hil)")
    ap.add_argument("--board", required=True, help="the virtual board (target/release/virtual-board)")
    ap.add_argument("--out", required=True, help="directory for the JSON lines")
    ap.add_argument("--configs", default=str(ROOT / "fixtures" / "configs"))
    ap.add_argument("--parallel", type=int, default=6, help="boards at once (default 6)")
    ap.add_argument("--only", help="run only variants whose name contains this")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.jsonl"):
        old.unlink()
    todo = [v for v in variants(Path(args.configs)) if not args.only or args.only in v[0]]
    port = free_port()
    broker = subprocess.Popen([args.hil, "broker", "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workdir = Path(tempfile.mkdtemp(prefix="meterrig-ha-capture-"))
    started = time.monotonic()
    results: dict[str, list[dict]] = {}
    failures: list[str] = []
    try:
        wait_port(port)
        rec = Recorder(port)
        lock = threading.Lock()
        queue = list(todo)

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    name, config, _ = queue.pop(0)
                try:
                    msgs = run_variant(Path(args.board), rec, port, name, config, workdir)
                    with lock:
                        results[name] = msgs
                except Exception as err:  # noqa: BLE001 - reported per variant
                    with lock:
                        failures.append(f"{name}: {err}")

        threads = [threading.Thread(target=worker) for _ in range(max(1, args.parallel))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rec.stop()
    finally:
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
    everything_configs, everything_states = [], []
    lines = []
    for name, _, what in todo:
        msgs = results.get(name)
        if msgs is None:
            continue
        configs = [m for m in msgs if m["topic"].startswith(f"{PREFIX}/")]
        states = [m for m in msgs if not m["topic"].startswith(f"{PREFIX}/")]
        if not configs:
            failures.append(f"{name}: no discovery config was published")
        (out_dir / f"{name}.jsonl").write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in msgs))
        everything_configs += configs
        everything_states += states
        lines.append(f"  {name:22s} {len(configs):3d} discovery configs, {len(states):4d} state messages  ({what})")
    (out_dir / "all.jsonl").write_text(
        "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in everything_configs + everything_states))
    print(f"captured {len(results)} of {len(todo)} boards in {time.monotonic() - started:.1f} s: "
          f"{len(everything_configs)} discovery configs, {len(everything_states)} state messages -> {out_dir}")
    print("\n".join(lines))
    for f in failures:
        print(f"PROBLEM {f}")
    if failures:
        print(f"board logs kept in {workdir}")
    else:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures or not results else 0


if __name__ == "__main__":
    sys.exit(main())
