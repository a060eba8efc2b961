#!/usr/bin/env bash
# Creates the Python venvs the tests use, each once: a stamp of its requirements
# file makes repeat runs instant.
#   .venv       the AWS stand-in's pinned requirements (moto[server] 5.2.5)
#   .venv/lint  SAM CLI and cfn-lint for template.yaml, apart because
#               aws-sam-cli pins a boto3 that the stand-in's pins exclude
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-python3}

# make_venv DIR REQUIREMENTS PURPOSE
make_venv() {
    local venv=$1 req=$2 what=$3
    local stamp="$venv/.requirements.sha256"
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    if ! "$python" -m venv --help >/dev/null 2>&1; then
        echo "setup-venv: $python has no venv module; installing python3-venv" >&2
        if command -v apt-get >/dev/null; then
            ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get update -qq
            ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq python3-venv
        fi
    fi
    echo "setup-venv: creating $venv ($what)" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
}

make_venv "$root/.venv" "$root/tests/standin/requirements.txt" "moto server for the integration tests"
make_venv "$root/.venv/lint" "$root/tests/standin/requirements-lint.txt" "SAM CLI and cfn-lint for template.yaml"
