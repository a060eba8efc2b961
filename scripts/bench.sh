#!/usr/bin/env bash
# The benchmark of the release terminate-drain binary (not a test; CI does not run
# it): cold start, peak memory, AWS calls per poll, lag to completion, against the
# AWS stand-in. See docs/benchmarks.md and crates/testkit/src/bin/bench/.
# Prints a Markdown report on stdout (progress on stderr). Takes about 2-3 minutes once
# built; the first release build of the SDK stack takes ~20 minutes on 2 cores.
# Smaller runs: BENCH_INSTANCES, BENCH_COLD_REPS, BENCH_POLLS, BENCH_LAG_REPS,
# BENCH_LAG_REPS_5S.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
cargo build --release -p terminate-drain -p testkit
exec target/release/ecs-lifecycle-bench "$@"
