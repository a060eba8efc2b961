#!/usr/bin/env bash
# Installs the system tools scripts/test needs besides cargo: shellcheck (lints
# crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh). Idempotent: does
# nothing when the tool is already on PATH. Non-interactive apt-get; runs as root
# or through sudo.
set -euo pipefail
if command -v shellcheck >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-tools: shellcheck is missing and apt-get is not available; install shellcheck by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
echo "setup-tools: installing shellcheck (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
command -v shellcheck >/dev/null
