#!/usr/bin/env bash
# Creates .venv with the AWS stand-in's pinned requirements (moto[server] 5.2.5),
# once: a stamp of the requirements file makes repeat runs instant.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
req="$root/tests/standin/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
python=${PYTHON:-python3}
if ! "$python" -m venv --help >/dev/null 2>&1; then
    echo "setup-venv: $python has no venv module; installing python3-venv" >&2
    if command -v apt-get >/dev/null; then
        ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get update -qq
        ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq python3-venv
    fi
fi
echo "setup-venv: creating $venv (moto server for the integration tests)" >&2
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
