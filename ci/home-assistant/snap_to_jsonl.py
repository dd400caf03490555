#!/usr/bin/env python3
"""Turn a rig topic-tree snapshot (features/snapshots/*.snap: `TOPIC [r] PAYLOAD` lines, `[r]` retained, `[-]`
not) into validate_discovery.py input lines, undoing the redactions:

    python3 ci/home-assistant/snap_to_jsonl.py features/snapshots/ha-discovery.snap > /tmp/ha.jsonl

Defaults: `[M]` and `[node]` -> watermeter, `[redacted]` -> x; `--subst TOKEN=VALUE` overrides / adds (applied
before the defaults, e.g. --subst '"cu":"[redacted]"="cu":"http://192.0.2.10"').
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def convert(text: str, subst: dict[str, str]) -> list[dict]:
    body = text
    if body.startswith("---"):
        parts = body.split("---", 2)
        body = parts[2] if len(parts) == 3 else ""
    out = []
    for line in body.splitlines():
        if not line.strip():
            continue
        for token, value in subst.items():
            line = line.replace(token, value)
        topic, _, rest = line.partition(" ")
        retain = False
        if rest.startswith("[r] "):
            retain, rest = True, rest[4:]
        elif rest.startswith("[-] "):
            rest = rest[4:]
        out.append({"topic": topic, "payload": rest, "retain": retain})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("snapshot")
    ap.add_argument("--subst", action="append", default=[], metavar="TOKEN=VALUE")
    args = ap.parse_args()
    subst: dict[str, str] = {}
    for item in args.subst:  # applied first, before the defaults, so they can be more specific
        token, _, value = item.partition("=")
        subst[token] = value
    for token, value in {"[M]": "watermeter", "[node]": "watermeter", "[redacted]": "x"}.items():
        subst.setdefault(token, value)
    for msg in convert(Path(args.snapshot).read_text(), subst):
        print(json.dumps(msg, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
