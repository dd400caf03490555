#!/usr/bin/env python3
"""The verdict of run.sh: validate_discovery.py's output per Home Assistant version against what was captured.

    python3 ci/home-assistant/summarize.py --capture CAPTURE/all.jsonl RESULTS.jsonl [RESULTS.jsonl ...]

RESULTS files are validate_discovery.py --startup output (the first line says the HA version). Fails (exit 1) when
HA logged an error or a warning, at startup or for any message; when a discovery config made no entity; when a
result is missing. Prints one line per HA version, then every problem with the board variant it came from.
Plain Python 3.8+, no Home Assistant needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", required=True)
    ap.add_argument("--prefix", default="homeassistant")
    ap.add_argument("results", nargs="+")
    args = ap.parse_args()
    captured = [json.loads(line) for line in Path(args.capture).read_text().splitlines() if line.strip()]
    variants = list(dict.fromkeys(m.get("variant", "?") for m in captured))
    configs = sum(1 for m in captured if m["topic"].startswith(args.prefix + "/"))
    print(f"{len(variants)} boards, {configs} discovery payloads, {len(captured) - configs} state messages "
          f"captured live ({args.capture})")
    failed = False
    problems: list[str] = []
    for path in args.results:
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        startup = lines[0] if lines and lines[0].get("startup") else None
        results = lines[1:] if startup else lines
        version = startup.get("ha_version", "?") if startup else "?"
        counts: Counter = Counter()
        if startup is None:
            problems.append(f"HA {version}: {path} has no startup line (did HA start?)")
        else:
            for kind in ("errors", "warnings"):
                for text in startup[kind]:
                    counts[kind] += 1
                    problems.append(f"HA {version} startup {kind[:-1]}: {text}")
        if len(results) != len(captured):
            problems.append(f"HA {version}: {len(results)} results for {len(captured)} messages ({path})")
        entities = validated = 0
        for msg, res in zip(captured, results):
            if res.get("topic") != msg["topic"]:
                problems.append(f"HA {version}: result for {res.get('topic')} where {msg['topic']} was sent")
                break
            is_config = msg["topic"].startswith(args.prefix + "/")
            validated += is_config
            if is_config and res.get("entity"):
                entities += 1
            for kind in ("errors", "warnings", "info"):
                for text in res.get(kind, []):
                    counts[kind] += 1
                    if kind != "info":
                        problems.append(f"HA {version} {kind[:-1]} [{msg.get('variant', '?')}] {msg['topic']}: {text}")
        if entities != validated:
            problems.append(f"HA {version}: {validated - entities} discovery payloads made no entity")
        print(f"HA {version}: {validated} discovery payloads -> {entities} entities, {len(results) - validated} state "
              f"messages; HA logged {counts['errors']} errors, {counts['warnings']} warnings, {counts['info']} notes")
        for res in results:
            for text in res.get("info", []):
                print(f"  note (not a failure) {res.get('topic')}: {text}")
    for p in problems[:60]:
        print("PROBLEM " + p)
    if len(problems) > 60:
        print(f"PROBLEM ... and {len(problems) - 60} more (see the result files)")
    failed = bool(problems)
    print("Home Assistant accepts every payload: no error, no warning" if not failed
          else f"Home Assistant found {len(problems)} problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
