#!/usr/bin/env python3
"""Run a real Home Assistant (`python -m homeassistant`) against an MQTT broker, for the HIL rig.

Run it with the Python of the venv install.sh made:

    target/home-assistant/venv-2024.3.3/bin/python ci/home-assistant/live_ha.py --broker 127.0.0.1:1883

It seeds a config dir (MQTT config entry with discovery on, an admin user with a long-lived access token, the
meterrig_bridge custom integration), starts `hass`, waits until HA is RUNNING, MQTT is connected and HA's own
birth message went over the broker (so discovery is subscribed), then prints ONE JSON line on stdout:

    {"event": "ready", "url": "http://127.0.0.1:PORT", "token": "...", "log": "/.../ha.log", "pid": N, ...}

and keeps running until SIGTERM / SIGINT (it then stops HA cleanly). Control, besides signals: lines on stdin
(`restart`, `stop`, `start`, `kill`, `status`, `quit`) and SIGHUP (= restart); each (re)start prints a new ready
line, `stop` prints {"event": "stopped"}. HA asking to restart itself (service homeassistant.restart) is
honoured the same way. See README.md for the whole interface.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ha_common  # noqa: E402

RESTART_EXIT_CODE = 100


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def note(msg: str) -> None:
    sys.stderr.write(f"live_ha: {msg}\n")
    sys.stderr.flush()


def _set_pdeathsig() -> None:
    """In the child: get SIGTERM when the supervisor dies (Linux), so no orphaned HA keeps the port."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass
    os.setsid()


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.owns_dir = args.config_dir is None
        self.config_dir = Path(args.config_dir or tempfile.mkdtemp(prefix="meterrig-ha-")).resolve()
        self.port = args.http_port or ha_common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.config_dir / "ha.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.token = ""
        self.stopping_on_purpose = False

    # -- setup ------------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        a = self.args
        host, _, port = a.broker.rpartition(":") if ":" in a.broker else (a.broker, "", "1883")
        ha_common.write_configuration(
            self.config_dir,
            http_port=self.port,
            api=True,
            bridge=True,
            birth_topic=f"{a.prefix}/status",
            log_default=a.log_level,
        )
        ha_common.write_mqtt_entry(
            self.config_dir,
            broker=host or "127.0.0.1",
            port=int(port or 1883),
            username=a.username,
            password=a.password,
            prefix=a.prefix,
            client_id=a.client_id,
        )
        ha_common.install_bridge(self.config_dir)
        self.token = ha_common.ensure_token(self.config_dir)

    # -- HTTP -------------------------------------------------------------------------------------------------
    def host_path(self, path: Path) -> str:
        """A path as the rig sees it (current.sh runs this script inside a chroot)."""
        if self.args.host_root:
            return str(Path(self.args.host_root) / str(path).lstrip("/"))
        return str(path)

    def get_json(self, path: str, timeout: float = 2.0):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode())

    # -- process control --------------------------------------------------------------------------------------
    def start(self) -> bool:
        self.starts += 1
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"==== live_ha: start #{self.starts} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} ====\n".encode())
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        cmd = [
            sys.executable,
            str(Path(__file__).resolve().parent / "ha_runner.py"),
            "--config",
            str(self.config_dir),
            "--skip-pip",
            "--log-no-color",
            "--log-file",
            str(self.config_dir / "home-assistant.log"),
        ]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_set_pdeathsig, env=env
        )
        log.close()
        deadline = time.monotonic() + self.args.ready_timeout
        last: dict | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                emit({"event": "exited", "code": self.proc.returncode, "during": "startup", "log": self.host_path(self.log_path)})
                return False
            try:
                last = self.get_json("/api/meterrig/status", timeout=1.0)
                if last.get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.1)
        else:
            emit({"event": "error", "reason": "not ready in time", "last_status": last, "log": self.host_path(self.log_path)})
            return False
        emit(
            {
                "event": "ready",
                "url": self.url,
                "token": self.token,
                "log": self.host_path(self.log_path),
                "pid": os.getpid(),
                "ha_pid": self.proc.pid,
                "config_dir": self.host_path(self.config_dir),
                "ha_version": last.get("ha_version"),
                "start": self.starts,
                "startup_seconds": round(time.monotonic() - t0, 2),
            }
        )
        return True

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.stopping_on_purpose = True
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.args.stop_timeout)
        except subprocess.TimeoutExpired:
            note("HA did not stop in time, killing it")
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.stopping_on_purpose = False

    def cleanup(self) -> None:
        self.stop()
        if self.owns_dir and not self.args.keep:
            shutil.rmtree(self.config_dir, ignore_errors=True)

    # -- main loop --------------------------------------------------------------------------------------------
    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        pending: list[str] = []
        for sig, what in ((signal.SIGTERM, "quit"), (signal.SIGINT, "quit"), (signal.SIGHUP, "restart")):
            signal.signal(sig, lambda _s, _f, w=what: pending.append(w))

        if not self.start():
            self.cleanup()
            return 1
        stdin_open = sys.stdin is not None and not sys.stdin.closed
        buf = b""
        while True:
            fds = [wake_r] + ([sys.stdin.fileno()] if stdin_open else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                ready = []
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            if stdin_open and sys.stdin.fileno() in ready:
                chunk = os.read(sys.stdin.fileno(), 4096)
                if not chunk:
                    stdin_open = False  # EOF: keep running, signals still work
                    if self.args.quit_on_eof:
                        pending.append("quit")  # the rig that started us is gone (or let go of us)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        pending.append(line.decode(errors="replace").strip())
            # HA exited by itself?
            if self.proc is not None and self.proc.poll() is not None and not self.stopping_on_purpose:
                code = self.proc.returncode
                self.proc = None
                if code == RESTART_EXIT_CODE:
                    note("HA asked for a restart")
                    if not self.start():
                        self.cleanup()
                        return 1
                else:
                    emit({"event": "exited", "code": code, "log": self.host_path(self.log_path)})
                    self.cleanup()
                    return 1
            while pending:
                cmd = pending.pop(0)
                if cmd == "quit":
                    self.cleanup()
                    emit({"event": "stopped", "final": True})
                    return 0
                if cmd == "restart":
                    self.stop()
                    if not self.start():
                        self.cleanup()
                        return 1
                elif cmd == "stop":
                    self.stop()
                    emit({"event": "stopped"})
                elif cmd == "kill":
                    self.stop(kill=True)
                    emit({"event": "stopped", "killed": True})
                elif cmd == "start":
                    if self.proc is None and not self.start():
                        self.cleanup()
                        return 1
                elif cmd == "status":
                    try:
                        st = self.get_json("/api/meterrig/status")
                    except Exception as err:  # noqa: BLE001
                        st = {"error": str(err)}
                    emit({"event": "status", "running": self.proc is not None, **st})
                else:
                    emit({"event": "error", "reason": f"unknown command {cmd!r}"})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", required=True, help="HOST[:PORT] of the MQTT broker (default port 1883)")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--client-id", help="MQTT client id HA uses (default: HA's random one)")
    p.add_argument("--prefix", default="homeassistant", help="discovery prefix (default homeassistant)")
    p.add_argument("--config-dir", help="HA config dir to use and keep (default: a temp dir, removed at exit)")
    p.add_argument("--keep", action="store_true", help="keep the temp config dir at exit")
    p.add_argument("--http-port", type=int, help="HA's HTTP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--log-level", default="info", help="HA's default log level (default info)")
    p.add_argument("--ready-timeout", type=float, default=120.0, help="seconds (default 120)")
    p.add_argument("--stop-timeout", type=float, default=60.0, help="seconds before SIGKILL (default 60)")
    p.add_argument(
        "--quit-on-eof",
        action="store_true",
        help="quit (stop HA cleanly) when stdin closes: the process that started us went away (hil does this)",
    )
    p.add_argument("--host-root", help=argparse.SUPPRESS)  # set by current.sh: report paths as seen by the host
    args = p.parse_args()
    sup = Supervisor(args)
    try:
        sup.prepare()
        return sup.run()
    except BaseException:
        sup.cleanup()
        raise


if __name__ == "__main__":
    sys.exit(main())
