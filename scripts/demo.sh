#!/usr/bin/env bash
# kiln's main job on a fresh Debian machine: build kiln and run it on examples/hello.
# Until the engine lands, this parses the example Dockerfile, checks it and prints the LLB graph
# it compiles to (one op per line, as `buildctl debug dump-llb` does).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
cargo build --release --locked -p kiln-cli
./target/release/kiln debug parse-dockerfile examples/hello/Dockerfile
./target/release/kiln debug dump-llb examples/hello
