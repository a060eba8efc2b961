#!/usr/bin/env bash
# Installs the tools scripts/test needs besides cargo and the Python venvs:
#   - the IAM policy engine, @cloud-copilot/iam-simulate (npm, the version and
#     its dependencies pinned by tests/iam/package-lock.json), into
#     tests/iam/node_modules (gitignored) with `npm ci`; needs Node.js and npm;
#   - shellcheck (lints crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh),
#     with apt-get when it is not on PATH (non-interactive; as root or through sudo).
# Idempotent: a stamp of the lock file makes a repeat npm step instant.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

iam="$root/tests/iam"
stamp="$iam/node_modules/.package-lock.sha256"
want="$(sha256sum "$iam/package-lock.json" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup-tools: npm is missing: install Node.js (20 or later) and npm" >&2
        exit 1
    fi
    echo "setup-tools: installing the IAM policy engine (npm ci in tests/iam)" >&2
    npm ci --prefix "$iam" --no-audit --no-fund --silent
    echo "$want" > "$stamp"
fi

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
