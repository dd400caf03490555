#!/usr/bin/env python3
"""docs/mqtt-api/reference-comparison.md from fixtures/reference/v17-surface.toml: the tables, the counts and the
list of differences nothing decides are generated; edit the toml (and the prose here), never the md.

    python3 ci/reference_comparison.py            # rewrite the md
    python3 ci/reference_comparison.py --check    # exit 1 when the md is not what the toml gives

Python 3.11+ (tomllib), nothing else. harness/tests/v17_surface.rs checks the md's counts against the toml and the
toml's topics, retain flags, QoS, formats and HA entity identities against a live virtual board, and runs --check.
"""

import argparse
import sys
import tomllib
from collections import Counter, OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--toml", default=str(ROOT / "fixtures/reference/v17-surface.toml"))
ap.add_argument("--out", default=str(ROOT / "docs/mqtt-api/reference-comparison.md"))
ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
args = ap.parse_args()
SRC, OUT = args.toml, args.out
d = tomllib.load(open(SRC, "rb"))

GROUPS = ["Device Info", "Device Status", "Process Status", "Process Data", "Process Control", "GPIO",
          "Home Assistant discovery", "MQTT session/connection", "REST"]


def _outside(s, f):
    parts = str(s).replace("\n", " ").split("`")
    return "`".join(f(x) if i % 2 == 0 else x for i, x in enumerate(parts))


def _plain(x):
    return (x.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("~", "\\~"))


def text(s):
    return _outside(s, _plain)


def esc(s):
    return text(s).replace("|", "\\|")


def code(s):
    s = str(s)
    if s == "":
        return "''"
    return "`" + s.replace("`", "'") + "`"


def split_note(it):
    import re
    n = it.get("note", "")
    m = re.search(r"(?:^|(?<=\s))fix: ", n)
    if m:
        return n[:m.start()].strip(), n[m.end():].strip()
    return n.strip(), ""


def sent(s):
    s = str(s).rstrip()
    while s.endswith("."):
        s = s[:-1].rstrip()
    return s + "."


def verdict(v):
    return "**DIFF**" if v == "DIFF" else v


def topic_group(t):
    if t.startswith("device/info"):
        return "Device Info"
    if t.startswith("device/status"):
        return "Device Status"
    if t.startswith("process/status"):
        return "Process Status"
    if t.startswith("process/data"):
        return "Process Data"
    if t.startswith("device/gpio"):
        return "GPIO"
    return "Process Control"


def control_group(t):
    if t.startswith("process/ctrl"):
        return "Process Control"
    if t.startswith("device/gpio"):
        return "GPIO"
    return "Home Assistant discovery"


def beh_group(item):
    g = item.split(":", 1)[0]
    return "Home Assistant discovery" if g == "HA discovery" else g


def topic_v17(t):
    r = t["retain"]
    r = "per config" if r == "config" else ("yes" if r else "no")
    s = f"retain {r}, QoS {t['qos']}, {t['format']}"
    if t["format"] == "json":
        pwm = t.get("pwm_only_properties", [])
        s += ": " + ", ".join(code(p) + (" (PWM pins only)" if p in pwm else "") for p in t["properties"])
    elif "pattern" in t:
        s += ", matches " + code(t["pattern"])
    s += ". When: " + t["when"]
    return s


def keys_text(keys):
    import json
    parts = []
    for k, v in keys.items():
        parts.append("`" + json.dumps(k, ensure_ascii=False) + ": " + json.dumps(v, ensure_ascii=False, separators=(", ", ": ")) + "`")
    return ", ".join(parts) if parts else "(not published)"


def mt_v17(m):
    def n(x):
        return x if x else "(none)"
    return (f"dev_cla {n(m['device_class'])}, unit {n(m['unit'])}, time unit {n(m['time_unit'])}, rate unit {n(m['rate_unit'])}, "
            f"rate dev_cla {m['rate_device_class']}, rate/interval unit {n(m['rate_per_interval_unit'])}, actual stat_cla {m['actual_state_class']}")


items = OrderedDict((g, []) for g in GROUPS)  # per group: list of (kind, item)
for t in d["topic"]:
    items[topic_group(t["topic"])].append(("topic", t))
for c in d["control"]:
    items[control_group(c["topic"])].append(("control", c))
for h in d["ha_entity"]:
    items["Home Assistant discovery"].append(("ha_entity", h))
for m in d["meter_type"]:
    items["Home Assistant discovery"].append(("meter_type", m))
for b in d["behaviour"]:
    items[beh_group(b["item"])].append(("behaviour", b))


def cat(v):
    return "decision" if v.startswith("decision") else v


counts = Counter()
gcounts = OrderedDict()
for g, lst in items.items():
    c = Counter(cat(it["verdict"]) for _, it in lst)
    gcounts[g] = c
    counts.update(c)
total = sum(counts.values())

out = []
w = out.append
w("# meterrig vs. the v17.0.0 reference: MQTT, REST and Home Assistant surface")
w("")
w("Machine-readable twin: [`fixtures/reference/v17-surface.toml`](../../fixtures/reference/v17-surface.toml) (same items, same "
  "verdicts). This file is generated from it by `python3 ci/reference_comparison.py` (`--check` compares): edit the toml, "
  "never this file. `cargo test -p harness --test v17_surface` checks the toml against a live virtual board on the rig's "
  "broker (every `[[topic]]`: topic, retain flag, QoS, payload pattern, JSON properties; every `[[ha_entity]]`: config "
  "topic, unique id and name, and all keys of the `same` ones; duplicate keys in control payloads), that this file is "
  "what the toml generates, and that every decision a verdict cites exists and is not withdrawn.")
w("")
w("## How this was built")
w("")
w("- **Reference** = the v17.0.0 release of `Slider0007/AI-on-the-edge-device` (release commit `2b3de53e`, whose code is "
  "develop `ea52a5ca3119a18d0bd3b3313b8d99e580a93a13`). Every file was read at `ea52a5ca` (`git show ea52a5ca:<path>` in the "
  "mirrored repository); every reference is `file:line` at that commit; the first file of a reference is given with its full path, "
  "further ones by file name (`helper.cpp` = `code/components/misc_helper/helper.cpp`, `ClassFlowMQTT.cpp` = "
  "`code/components/mainprocess_ctrl/ClassFlowMQTT.cpp`, ...) and `:N` alone means the file named before. The items were collected by reading the code itself: `mqtt_ctrl/{interface_mqtt,server_mqtt}.cpp`, "
  "`mainprocess_ctrl/{ClassFlowMQTT,ClassFlowControl,ClassFlowPostProcessing,MainFlowControl}.cpp`, `gpio_ctrl/*.cpp`, "
  "`config_handling/{cfgDataStruct.h,configClass.cpp}`, `code/include/defines.h`, the helpers they call (`misc_helper`, "
  "`wlan_ctrl`, `time_sntp`, `camera_ctrl`), then checked against `docs/API/MQTT/*.md`, `docs/API/REST/mqtt.md` and the "
  "parameter pages. **Where docs and code disagree, the code decides** (e.g. docs `ntp_sync_status`, heap in kB, "
  "`device/data/[N]/json`: the code publishes `ntp_syncstatus`, bytes, `process/data/[N]/json`).")
w("- **Client defaults** that v17 leaves to ESP-IDF (platformio `espressif32 @ 6.7.0`, ESP-IDF 5.2): esp-mqtt "
  "`esp_mqtt_set_config` sets clean session = `!disable_clean_session` (v17 leaves it unset: clean session 1), will QoS only "
  "when given (v17 gives none: QoS 0), and replaces a keepalive of 0 with `MQTT_KEEPALIVE_TICK` = 120 s. The keepalive bug: "
  "`MQTT_Configure(const CfgData::SectionMqtt *_param, int keepAlive)` assigns `keepAlive = keepAlive;` "
  "(`mqtt_ctrl/interface_mqtt.cpp:207-210`): the parameter shadows the file-static `keepAlive` (`:25`), which stays 0, so "
  "`mqtt_cfg.session.keepalive = keepAlive` (`:313`) passes 0 and every v17 device connects with **120 s**, whatever the "
  "interval (`ClassFlowMQTT.cpp:86` computes 2.5 x interval; only the debug log at `:219-223` shows it). Verified.")
w("- **Our behaviour** is taken from the code at meterrig commit `06a6744`: `firmware/core/src/engine/{mod,contract,topics,control,cycle,console,apply}.rs` "
  "(the engine, split by concern), `firmware/core/src/{discovery,gpio,control,rest,postprocess,config,time,json}.rs`, the shell "
  "both boards run (`firmware/shell/src/{shell,mqtt,time,uart,http,limits}.rs`), `firmware/net-proto` (MQTT session and CONNECT, "
  "HTTP, SNTP), the boards' facts (`firmware/host/src/board.rs`, `firmware/esp32c3/src/{main,net,mqtt}.rs`). Our `file:line` "
  "references are relative to `firmware/` at that commit; a bare file name means the one named before in the same cell. "
  "The first draft of this comparison was written against `5eb5443` (131 items: 42 same, 4 spec, 29 decision, 56 DIFF); "
  "every item was re-verified against `06a6744`, and items were added for what the firmware does since (network time, "
  "the HTTP server, leaving MQTT before a restart, connection supervision, ...). Items revised after `06a6744` name the "
  "commit their references are at (`at 5b240a6`): the four differences the comparison found there were fixed in "
  "`0e9b229` (control payloads naming a key twice are refused) and `2c32e3d` (empty time zone, secret placeholder, "
  "broker change), and are verified against the code at `5b240a6`.")
w("- **Verdicts**: `same`; `spec` = covered by the spec README's decisions table; `decision N` (or `decision N, M`) = "
  "covered by `docs/decisions.md` entries N (and M), each checked to describe what we do and what v17.0.0 does, with "
  "file:line on both sides; **DIFF** = a difference nothing decides: a bug to fix (what to fix follows **Change:** in "
  "the last section). Items whose v17 behaviour we now share are `same` even where an older decision used to differ "
  "(decisions 11 and 15 are withdrawn).")
w("- **Conventions**: topics are relative to the main topic `[M]`; `[N]` sequence id, `[S]` sequence name, `[G]` GPIO topic "
  "name, `[node]` last level of `[M]`, `[P]` discovery prefix, `<...>` a runtime value. JSON whitespace and key order are "
  "compared once (MQTT session: *JSON payload layout*, decision 47); HA entity rows compare keys and values, while the `qos` "
  "value type (decision 10), the `dev` block (decision 13) and the serializer (spec) are compared once under HA discovery. "
  "Meter-type dependent HA values are in the meter-type table.")
w("")
w("## Counts")
w("")
w(f"{total} items: **{counts['same']} same, {counts['spec']} spec, {counts['decision']} decision, {counts['DIFF']} DIFF**.")
w("")
w("| group | items | same | spec | decision | DIFF |")
w("|---|---|---|---|---|---|")
for g, c in gcounts.items():
    w(f"| {g} | {sum(c.values())} | {c['same']} | {c['spec']} | {c['decision']} | {c['DIFF']} |")
w("")

for g, lst in items.items():
    w(f"## {g}")
    w("")
    topics = [it for k, it in lst if k == "topic"]
    controls = [it for k, it in lst if k == "control"]
    ents = [it for k, it in lst if k == "ha_entity"]
    mts = [it for k, it in lst if k == "meter_type"]
    behs = [it for k, it in lst if k == "behaviour"]
    if topics:
        w("Published topics:")
        w("")
        w("| topic | v17.0.0 | meterrig | verdict | reference |")
        w("|---|---|---|---|---|")
        for t in topics:
            pre, fix = split_note(t)
            v17 = sent(topic_v17(t)) + (f" Note: {pre}" if pre else "")
            w(f"| `{esc(t['topic'])}` | {esc(v17)} | {esc(t['ours'])} | {verdict(t['verdict'])} | {esc(t['reference'])} |")
        w("")
    if controls:
        w("Subscribed (control) topics:")
        w("")
        w("| topic | v17.0.0 accepts | v17.0.0 refuses | meterrig | verdict | reference |")
        w("|---|---|---|---|---|---|")
        for c in controls:
            pre, fix = split_note(c)
            ours = c["ours"] + (f". Note: {pre}" if pre else "")
            w(f"| `{esc(c['topic'])}` | {esc(c['accepts'])} | {esc(c['refuses'])} | {esc(ours)} | {verdict(c['verdict'])} | {esc(c['reference'])} |")
        w("")
    if ents:
        w("Discovery entities (config topic `[P]/<component>/[node]/<object id>/config`; keys in the order v17 writes them; "
          "v17 sends `qos` as the string `\"1\"`):")
        w("")
        w("| component / object id | unique id | keys v17.0.0 sends | meterrig | verdict | reference |")
        w("|---|---|---|---|---|---|")
        for h in ents:
            pre, fix = split_note(h)
            ours = h["ours"] + (f". Note: {pre}" if pre else "")
            w(f"| {h['component']} `{esc(h['object_id'])}` | `{esc(h['unique_id'])}` | {esc(keys_text(h['keys']))} | {esc(ours)} | {verdict(h['verdict'])} | {esc(h['reference'])} |")
        w("")
    if mts:
        w("Meter types (`mqtt.homeassistant.metertype`; v17 table `mainprocess_ctrl/ClassFlowMQTT.cpp:38-70`, enum "
          "`config_handling/cfgDataStruct.h:49-61`, clamped to 0..10 at `configClass.cpp:901`). `[unit]` and `[device_class]` go to "
          "actual/fallback/raw value, `[rate_unit]` and `[rate_device_class]` to the rate entity; time unit `h` makes "
          "`rate_per_time_unit` = rate per minute x 60, anything else = rate per minute:")
        w("")
        w("| id | v17.0.0 | meterrig (`core/src/discovery.rs:45-57`) | verdict | reference |")
        w("|---|---|---|---|---|")
        for m in mts:
            pre, fix = split_note(m)
            v17 = f"{m['name']}: {mt_v17(m)}"
            ours = m["ours"] + (f". Note: {pre}" if pre else "")
            w(f"| {m['id']} | {esc(v17)} | {esc(ours)} | {verdict(m['verdict'])} | {esc(m['reference'])} |")
        w("")
    if behs:
        w("Behaviour:")
        w("")
        w("| item | v17.0.0 | meterrig | verdict | reference |")
        w("|---|---|---|---|---|")
        for b in behs:
            pre, fix = split_note(b)
            ours = b["ours"] + (f". Note: {pre}" if pre else "")
            name = b["item"].split(":", 1)[1].strip()
            w(f"| {esc(name)} | {esc(b['v17'])} | {esc(ours)} | {verdict(b['verdict'])} | {esc(b['reference'])} |")
        w("")

w("## Differences nothing decides (DIFF)")
w("")
if not counts["DIFF"]:
    w("None: every difference from the v17.0.0 code is fixed or decided. A new one gets verdict `DIFF` in the toml "
      "with `fix: ...` in its note, and is listed here.")
    w("")
else:
    w(f"{counts['DIFF']} items. Each: what v17.0.0 does (reference at `ea52a5ca`), what we do, and what to change, or "
      "which decision to write and why. Where the fix is a decision, the difference is deliberate or harmless and changing "
      "the code would make the device worse or cost a lot; where it is a code change, devices in the field publish the v17 "
      "form and HA entities, Node-RED flows and automations are bound to it.")
    w("")
n = 0
for g, lst in items.items():
    diffs = [(k, it) for k, it in lst if it["verdict"] == "DIFF"]
    if not diffs:
        continue
    w(f"### {g}")
    w("")
    for k, it in diffs:
        n += 1
        pre, fix = split_note(it)
        if k == "topic":
            name = f"topic `{it['topic']}`"
            v17 = topic_v17(it)
        elif k == "control":
            name = f"control `{it['topic']}`"
            v17 = "accepts " + it["accepts"] + "; refuses " + it["refuses"]
        elif k == "ha_entity":
            name = f"HA {it['component']} `{it['object_id']}`"
            v17 = keys_text(it["keys"])
        elif k == "meter_type":
            name = f"meter type {it['id']}"
            v17 = f"{it['name']}: {mt_v17(it)}"
        else:
            name = it["item"]
            v17 = it["v17"]
        line = f"{n}. **{text(name)}** (`{it['reference']}`). v17: {text(sent(v17))}"
        if pre:
            line += f" {text(sent(pre))}"
        line += f" Ours: {text(sent(it['ours']))}"
        if fix:
            line += f" **Change:** {text(sent(fix))}"
        w(line)
        w("")

text = "\n".join(out).rstrip() + "\n"
summary = f"{total} items: {counts['same']} same, {counts['spec']} spec, {counts['decision']} decision, {counts['DIFF']} DIFF"
if args.check:
    old = Path(OUT).read_text() if Path(OUT).exists() else ""
    if old != text:
        print(f"{OUT} is not generated from {SRC}: run python3 ci/reference_comparison.py", file=sys.stderr)
        sys.exit(1)
    print(f"{OUT}: up to date ({summary})")
else:
    Path(OUT).write_text(text)
    print(f"{OUT}: {summary}")
