#!/usr/bin/env bash
# The benchmarks (not tests; CI does not run them). See docs/benchmarks.md and
# crates/devtools/src/bench/.
#
#   scripts/bench.sh            terminate-drain against the AWS stand-in: cold start,
#                               peak memory, AWS calls per poll, lag to completion
#                               (about 2-3 minutes once built)
#   scripts/bench.sh footprint  cold start and peak memory of all three functions
#                               beside lambda-echo, a bare lambda_runtime binary, 15
#                               fresh processes each, alternated (under a minute; no
#                               stand-in); scripts/sizes.sh gives their binary and zip sizes
#
# Prints a Markdown report on stdout (progress on stderr). Each function is built
# on its own, as SAM builds it, so it gets only its own features (building them in
# one cargo invocation would unify the features of their dependencies). The first
# release build of the SDK stack takes ~20 minutes on 2 cores.
# Smaller runs: BENCH_INSTANCES, BENCH_COLD_REPS, BENCH_POLLS, BENCH_LAG_REPS,
# BENCH_LAG_REPS_5S; BENCH_FOOTPRINT_REPS for the footprint.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [ "${1:-}" = footprint ]; then
  for p in terminate-drain launch-verify ami-rollout lambda-echo; do
    cargo build --release --locked -p "$p"
  done
else
  scripts/setup-venv.sh
  cargo build --release --locked -p terminate-drain
fi
cargo build --release --locked -p devtools --bin ecs-lifecycle-bench
exec "$target/release/ecs-lifecycle-bench" "$@"
