#!/usr/bin/env bash
# What the anywhere-sentry integration tests need: Debian's Docker engine (docker.io:
# dockerd, containerd, runc) and a static busybox (busybox-static) to build the test
# image offline. Idempotent and non-interactive; installs only what is missing. The
# tests start their own private dockerd (as root), so no Docker service is started here.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then
    missing+=(busybox-static)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-docker.sh: ${missing[*]} missing and not root; install them with apt-get as root" >&2
    exit 1
fi
echo "setup-docker.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
