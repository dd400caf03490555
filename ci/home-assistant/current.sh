#!/usr/bin/env bash
# Runs one of the oracle tools under the CURRENT Home Assistant (2026.2.3, Python 3.13) that
# `install.sh --current` put into a Debian trixie chroot. Needs root (chroot).
#
#   ci/home-assistant/current.sh validate_discovery.py [FILE|-] [ARGS...]
#   ci/home-assistant/current.sh live_ha.py --broker 127.0.0.1:1883 [ARGS...]
#
# The tools are copied into the chroot (/opt/ha/tools) on every call. Host files named as arguments are copied
# to the chroot's /tmp and the argument rewritten; stdin / stdout pass through. live_ha.py gets
# --host-root so the paths in its ready line (log, config_dir) are host paths; its --config-dir, if given, is a
# path inside the chroot (ROOT/<path> on the host). The chroot shares the host's network, so 127.0.0.1 is the host.
# ROOT: $METERRIG_HA_CHROOT, else $METERRIG_HA_HOME/trixie-2026.2.3 (default target/home-assistant/trixie-2026.2.3).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROOT="${METERRIG_HA_CHROOT:-${METERRIG_HA_HOME:-$REPO/target/home-assistant}/trixie-2026.2.3}"
if [ ! -f "$ROOT/opt/ha/.meterrig-installed" ] && [ ! -L "$ROOT/opt/ha/venv/bin/python" ]; then
  echo "current.sh: no HA in $ROOT; run ci/home-assistant/install.sh --current first" >&2
  exit 2
fi
TOOL="${1:?usage: current.sh TOOL.py ARGS...}"
shift
mkdir -p "$ROOT/opt/ha/tools" "$ROOT/tmp/meterrig-args"
cp -r "$HERE"/*.py "$HERE/custom_components" "$ROOT/opt/ha/tools/"
ARGS=()
for a in "$@"; do
  if [ -f "$a" ]; then
    dest="/tmp/meterrig-args/$(basename "$a")"
    cp "$a" "$ROOT$dest"
    ARGS+=("$dest")
  else
    ARGS+=("$a")
  fi
done
if [ "$TOOL" = live_ha.py ]; then
  ARGS+=(--host-root "$ROOT")
fi
exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 TMPDIR=/tmp \
  /opt/ha/venv/bin/python "/opt/ha/tools/$TOOL" "${ARGS[@]}"
