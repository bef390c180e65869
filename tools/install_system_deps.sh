#!/usr/bin/env bash
# System packages the test suite needs, installed with apt-get when missing:
# - Debian's chromium and its matching chromium-driver for the explorer's browser tests (and
#   tools/screenshot_page.py); Selenium is pointed at these two files, so it never downloads a
#   browser of its own.
# - Debian's Slurm (slurmctld, slurmd, slurm-client) and munge for the cluster test, which starts a
#   single-node Slurm of its own (tools/local_cluster.py); nothing is started here, and no
#   service is enabled.
#   tools/install_system_deps.sh      (as root, e.g. with sudo)
set -euo pipefail

PACKAGES=()
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || PACKAGES+=(chromium chromium-driver)
[[ -x /usr/sbin/slurmctld ]] || PACKAGES+=(slurmctld)
[[ -x /usr/sbin/slurmd ]] || PACKAGES+=(slurmd)
[[ -x /usr/bin/sbatch && -x /usr/bin/squeue && -x /usr/bin/scontrol ]] || PACKAGES+=(slurm-client)
[[ -x /usr/sbin/munged ]] || PACKAGES+=(munge)

if [[ ${#PACKAGES[@]} -eq 0 ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "tsne-atlas: missing Debian packages ${PACKAGES[*]}; run $0 as root (sudo), or install them with apt-get" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# policy-rc.d: no package may start its daemon (there is no init system here; the test starts its own).
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod +x "$POLICY"
    CREATED_POLICY=1
fi
trap 'if [[ $CREATED_POLICY -eq 1 ]]; then rm -f "$POLICY"; fi' EXIT
apt-get install -y --no-install-recommends "${PACKAGES[@]}"
