#!/usr/bin/env bash
# The load benchmark of the release terminate-drain binary (not a test; CI does not
# run it): N instances draining at once against the AWS stand-in with ECS behind one
# account-wide token bucket, in either wait mode of the function. See
# docs/benchmarks.md ("Fleet-scale drains against the stand-in (issue 20)",
# "Concurrent drains under ECS throttling") and crates/devtools/src/load/ (what the
# stand-in plays, every setting). Prints a Markdown report on stdout (progress on
# stderr). Takes 1.5 minutes a scenario once built; the first release build of the
# SDK stack takes ~15-20 minutes on 2 cores. Honours CARGO_TARGET_DIR. With the
# disk or the time short, `cargo build --workspace` and run
# target/debug/ecs-lifecycle-load (the report says it is not a release build).
# Settings: LOAD_SIZES (default 10,50), LOAD_WAIT_MODE (in-invocation | queue: the
# continuations through the template's wait queue, played), LOAD_FUNCTIONS
# (function processes = the most invocations in flight; default one a drain
# in-invocation, two with events, 10 in the queue), LOAD_EVENTS (off | on: ECS's
# task-stopped events, EventBridge played), LOAD_EVENT_DELAY_MS (500),
# LOAD_TASKS (mixed: 2 service, 1 daemon, 1 standalone task a drained instance |
# one: 1 service task), LOAD_RATE (ECS calls/s, default 4), LOAD_BURST (10),
# LOAD_POLL_S (1 in-invocation, 10 in the queue, 30 with events), LOAD_HEARTBEAT_S
# (30 in-invocation, 120 in the queue), LOAD_INVOCATION_MS (60000), LOAD_STUCK_S
# (35), LOAD_SCHEDULER_MS (1000). A value that does not parse is an error. Issue
# 20's run: LOAD_SIZES=24 LOAD_TASKS=one LOAD_STUCK_S=60 LOAD_RATE=20
# LOAD_HEARTBEAT_S=120 LOAD_INVOCATION_MS=900000 LOAD_WAIT_MODE=queue [LOAD_EVENTS=on].
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
cargo build --release --locked -p terminate-drain -p devtools
exec "${CARGO_TARGET_DIR:-target}/release/ecs-lifecycle-load" "$@"
