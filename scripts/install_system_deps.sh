#!/usr/bin/env bash
# System packages the explorer's browser tests (and scripts/screenshot_page.py) need:
# Debian's chromium and its matching chromium-driver. Selenium is pointed at these two
# files, so it never downloads a browser of its own.
#   scripts/install_system_deps.sh      (as root, e.g. with sudo)
set -euo pipefail

BROWSER=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

if [[ -x "$BROWSER" && -x "$DRIVER" ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "tsne-atlas: $BROWSER or $DRIVER is missing; run $0 as root (sudo), or install the Debian packages chromium and chromium-driver" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium chromium-driver
