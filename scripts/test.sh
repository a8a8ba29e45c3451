#!/usr/bin/env bash
# Runs kiln's whole test suite: every unit, conformance, golden and end-to-end test, then the doctests.
# Usage (as root on a fresh Debian machine): ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
# The parity tests build the same Dockerfiles through the Docker engine's BuildKit.
bash scripts/dockerd.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "kiln: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --locked --profile "$profile" --no-fail-fast
cargo test --doc --workspace --locked
