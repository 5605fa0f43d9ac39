#!/usr/bin/env bash
# Installs everything callway and its test suite need on a fresh Debian machine
# (run as root): Debian peers used by the interop tests, a venv in .venv with
# callway installed editable plus the test tools. Idempotent and quick when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PKGS=(sip-tester sipsak baresip baresip-core keepalived stun-client coturn kamailio rtpengine-daemon
             tshark espeak-ng sox libsox-fmt-all iproute2 iptables redis-server chromium)

missing=()
for p in "${DEBIAN_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        echo "wireshark-common wireshark-common/install-setuid boolean false" \
            | debconf-set-selections 2>/dev/null || true
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: missing Debian packages (need root + apt): ${missing[*]}" >&2
    fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.callway-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e ".[test]"
    touch "$stamp"
fi
