#!/usr/bin/env bash
# The load benchmark of the release terminate-drain binary (not a test; CI does not
# run it): 10 and 50 instances draining at once, one function process each, against
# the AWS stand-in with ECS behind one account-wide token bucket. See
# docs/benchmarks.md ("Concurrent drains under ECS throttling") and
# crates/devtools/src/load/. Prints a Markdown report on stdout (progress on
# stderr). Takes about 5 minutes once built; the first release build of the SDK
# stack takes ~15-20 minutes on 2 cores. Honours CARGO_TARGET_DIR.
# Settings: LOAD_SIZES (default 10,50), LOAD_RATE (ECS calls/s, default 4),
# LOAD_BURST (10), LOAD_POLL_S (1), LOAD_HEARTBEAT_S (30), LOAD_INVOCATION_MS
# (60000), LOAD_STUCK_S (35), LOAD_SCHEDULER_MS (1000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
cargo build --release --locked -p terminate-drain -p devtools
exec "${CARGO_TARGET_DIR:-target}/release/ecs-lifecycle-load" "$@"
