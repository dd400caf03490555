#!/usr/bin/env bash
# Installs Home Assistant for the MQTT discovery oracle (validate_discovery.py, live_ha.py). Idempotent: a second
# run with everything in place takes well under a second.
#
#   ci/home-assistant/install.sh [DIR]            HA 2024.3.3 in a venv on Python 3.11 (default DIR:
#                                                 $METERRIG_HA_HOME/venv-2024.3.3)
#   ci/home-assistant/install.sh --current [DIR]  HA 2026.2.3 (needs Python >= 3.13.2) in a Debian trixie chroot
#                                                 made with debootstrap (default DIR:
#                                                 $METERRIG_HA_HOME/trixie-2026.2.3); needs root
#
# Downloads are cached under $METERRIG_HA_HOME/cache (pip wheels, debootstrap's .debs; the chroot keeps its own pip
# cache in /opt/ha/pip-cache), so a reinstall (new pins, a removed venv) does not fetch them again.
# Environment: METERRIG_HA_HOME (default target/home-assistant), HA_PYTHON (the Python 3.11/3.12 to build the
# venv from), DEBIAN_MIRROR (debootstrap's mirror, default http://deb.debian.org/debian), PIP_* as usual.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODE=stable
DIR=""
for arg in "$@"; do
  case "$arg" in
    --current) MODE=current ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    *) DIR="$arg" ;;
  esac
done

HA_HOME="${METERRIG_HA_HOME:-$ROOT/target/home-assistant}"
mkdir -p "$HA_HOME/cache"
HA_HOME="$(cd "$HA_HOME" && pwd)"
START=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$START" "$(date +%s.%N)"; }

# ------------------------------------------------------------------------------------------------------------
if [ "$MODE" = stable ]; then
  HA_VERSION=2024.3.3
  REQ="$HERE/requirements-$HA_VERSION.txt"
  DIR="${DIR:-$HA_HOME/venv-$HA_VERSION}"
  STAMP="$DIR/.meterrig-installed"
  WANT="$HA_VERSION $(sha256sum "$REQ" | cut -d' ' -f1)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$DIR/bin/python" ] \
     && "$DIR/bin/python" -c "import sys, homeassistant.const as c; sys.exit(c.__version__ != '$HA_VERSION')" 2>/dev/null; then
    echo "install.sh: Home Assistant $HA_VERSION already installed in $DIR ($(elapsed) s)"
    exit 0
  fi

  PY="${HA_PYTHON:-}"
  if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 "$HOME"/.pyenv/versions/3.11*/bin/python3.11 /usr/bin/python3.11 python3; do
      if command -v "$cand" >/dev/null 2>&1 \
         && "$cand" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
        PY="$cand"; break
      fi
    done
  fi
  if [ -z "$PY" ]; then
    echo "install.sh: Home Assistant $HA_VERSION needs Python 3.11 or 3.12; set HA_PYTHON" >&2
    exit 1
  fi
  echo "install.sh: installing Home Assistant $HA_VERSION into $DIR with $("$PY" --version 2>&1)"
  rm -f "$STAMP"
  if ! "$PY" -m venv --clear "$DIR" 2>/dev/null; then
    # Debian's Python has no ensurepip without its -venv package (a fresh machine).
    minor=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "install.sh: $PY cannot make a venv: installing python$minor-venv (apt-get)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq "python$minor-venv" >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq "python$minor-venv" >/dev/null; }
    fi
    "$PY" -m venv --clear "$DIR"
  fi
  PIP_CACHE_DIR="$HA_HOME/cache/pip" \
    "$DIR/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ"
  "$DIR/bin/python" -m pip check --disable-pip-version-check >/dev/null || {
    "$DIR/bin/python" -m pip check --disable-pip-version-check; exit 1; }
  "$DIR/bin/python" -c "import homeassistant.components.mqtt, homeassistant.components.http, paho.mqtt.client"
  echo "$WANT" > "$STAMP"
  echo "install.sh: Home Assistant $HA_VERSION installed in $DIR in $(elapsed) s ($(du -sh "$DIR" | cut -f1))"
  echo "install.sh: python: $DIR/bin/python"
  exit 0
fi

# ------------------------------------------------------------------------------------------------------------
# --current: Debian trixie (python3.13 = 3.13.5) in a debootstrap chroot; HA in a venv inside it at /opt/ha/venv.
HA_VERSION=2026.2.3
REQ="$HERE/requirements-$HA_VERSION.txt"
DIR="${DIR:-$HA_HOME/trixie-$HA_VERSION}"
STAMP="$DIR/opt/ha/.meterrig-installed"
WANT="$HA_VERSION $(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(id -u)" != 0 ]; then
  echo "install.sh --current: needs root (debootstrap, chroot)" >&2
  exit 1
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && chroot "$DIR" /opt/ha/venv/bin/python -c "import sys, homeassistant.const as c; sys.exit(c.__version__ != '$HA_VERSION')" 2>/dev/null; then
  echo "install.sh: Home Assistant $HA_VERSION already installed in the chroot $DIR ($(elapsed) s)"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "install.sh: installing debootstrap (apt-get)"
  apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
fi
if [ ! -x "$DIR/usr/bin/python3.13" ]; then
  echo "install.sh: debootstrap trixie (minbase + python3.13) into $DIR"
  rm -rf "$DIR"
  mkdir -p "$(dirname "$DIR")"
  # gcc + python3.13-dev: lru-dict 1.3.0 (pinned by HA) has no cp313 wheel on PyPI and builds from source.
  mkdir -p "$HA_HOME/cache/debootstrap"
  debootstrap --variant=minbase --cache-dir="$HA_HOME/cache/debootstrap" \
    --include=python3.13,python3.13-venv,python3.13-dev,gcc,libc6-dev,ca-certificates \
    trixie "$DIR" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$DIR.debootstrap.log" 2>&1 || {
      tail -20 "$DIR.debootstrap.log" >&2; exit 1; }
fi
# The host's CA bundle (it may hold a proxy's CA the chroot's ca-certificates lacks) and resolver.
cp /etc/ssl/certs/ca-certificates.crt "$DIR/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$DIR/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$DIR/opt/ha"
cp "$REQ" "$DIR/opt/ha/requirements.txt"
rm -f "$STAMP"
chroot "$DIR" python3.13 -m venv --clear /opt/ha/venv
chroot "$DIR" env -u PIP_FIND_LINKS PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_CACHE_DIR=/opt/ha/pip-cache \
  /opt/ha/venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r /opt/ha/requirements.txt
chroot "$DIR" /opt/ha/venv/bin/python -m pip check --disable-pip-version-check >/dev/null || {
  chroot "$DIR" /opt/ha/venv/bin/python -m pip check --disable-pip-version-check; exit 1; }
chroot "$DIR" /opt/ha/venv/bin/python -c "import homeassistant.components.mqtt, homeassistant.components.http, paho.mqtt.client"
echo "$WANT" > "$STAMP"
echo "install.sh: Home Assistant $HA_VERSION installed in the chroot $DIR in $(elapsed) s ($(du -sh "$DIR" | cut -f1))"
echo "install.sh: run the tools with $HERE/current.sh validate_discovery.py|live_ha.py ARGS..."
