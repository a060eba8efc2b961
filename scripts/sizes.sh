#!/usr/bin/env bash
# Binary and zip sizes of the release function binaries (docs/benchmarks.md,
# "Function size, cold start and memory"): each binary renamed `bootstrap` and
# zipped with deflate level 9, as SAM / cargo-lambda package it.
# Usage: scripts/sizes.sh [release dir]   (default: ${CARGO_TARGET_DIR:-target}/release)
# Build first, one package at a time as SAM does (each gets only its own features):
#   for p in terminate-drain launch-verify ami-rollout lambda-echo; do
#     cargo build --release --locked -p "$p"; done
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-${CARGO_TARGET_DIR:-target}/release}"
python3 - "$dir" <<'PY'
import io, os, sys, zipfile
d = sys.argv[1]
names = ["terminate-drain", "launch-verify", "ami-rollout", "lambda-echo"]
sizes = {}
for n in names:
    path = os.path.join(d, n)
    if not os.path.isfile(path):
        sys.exit(f"{path} is not built: cargo build --release --locked -p {n}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            z.writestr(info, f.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    sizes[n] = (os.path.getsize(path), len(buf.getvalue()))
eb, ez = sizes["lambda-echo"]
print("| binary | bytes | MB | zip bytes | zip MB | ratio to lambda-echo (binary, zip) |")
print("|---|---|---|---|---|---|")
for n in names:
    b, z = sizes[n]
    print(f"| {n} | {b:,} | {b/1e6:.2f} | {z:,} | {z/1e6:.2f} | {b/eb:.1f}x, {z/ez:.1f}x |")
PY
