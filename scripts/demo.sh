#!/usr/bin/env bash
# kiln's main job on a fresh Debian machine (as root): build kiln, then build examples/hello for
# real with the embedded builder (no daemon), and build it again to show the cache.
#
# The machine needs no internet access besides the package registries: the base image is made
# here, from Debian's busybox-static, and served by Debian's docker-registry on 127.0.0.1.
# The builder keeps its state in /var/lib/kiln, so a later run finds its cache there; the
# registry, the base image and the build results live in a temporary directory that is removed
# on exit. Running the script again is safe.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
trap 'echo "kiln demo: FAILED at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND" >&2' ERR

if [ "$(id -u)" != 0 ]; then
  echo "kiln demo: run this as root (it installs packages, and RUN steps use runc)" >&2
  exit 1
fi

step "Checking prerequisites (Debian packages, Rust toolchain)"
source scripts/prereqs.sh

step "Building kiln (cargo build --release; several minutes on a fresh machine)"
cargo build --release --locked --quiet -p kiln-cli
kiln=$PWD/target/release/kiln

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-demo.XXXXXX")
source scripts/demo/registry.sh
cleanup() {
  registry_stop
  rm -rf "$work"
}
trap cleanup EXIT

step "Starting a registry on 127.0.0.1 (Debian's docker-registry)"
registry_start "$work/registry"
echo "registry listening on $REGISTRY_ADDR" >&2

base=$REGISTRY_ADDR/library/busybox:1.36
step "Making the base image $base (busybox-static, umoci, skopeo)"
scripts/demo/busybox-image.sh "$work/busybox" 1.36
skopeo copy --quiet --dest-tls-verify=false "oci:$work/busybox:1.36" "docker://$base"

build() { # build DEST LOG: builds examples/hello into DEST, the progress on stderr and in LOG
  if ! "$kiln" build --progress plain --build-arg "BASE=$base" \
    -o "type=local,dest=$1" examples/hello 2>&1 | tee "$2" >&2; then
    echo "kiln demo: FAILED: kiln build examples/hello failed (its output is above)" >&2
    exit 1
  fi
}

step "kiln build examples/hello (embedded builder, state in ${KILN_ROOT:-/var/lib/kiln})"
start=$EPOCHREALTIME
build "$work/out" "$work/first.log"
first_time=$(seconds_since "$start")

step "What the build produced (the final stage's files, in $work/out)"
echo "\$ cat greeting.txt"
cat "$work/out/greeting.txt"
echo "\$ ls -l greeting.txt"
(cd "$work/out" && ls -l greeting.txt)
echo "\$ ls"
(cd "$work/out" && ls -x)

step "The same build again: every step comes from the cache"
start=$EPOCHREALTIME
build "$work/out-again" "$work/second.log"
second_time=$(seconds_since "$start")
cmp "$work/out/greeting.txt" "$work/out-again/greeting.txt"
# Every step of the second build (the context, FROM, WORKDIR, COPY, RUN: the vertices named
# `[...]`, except the Dockerfile and metadata loads, which always run) must say CACHED.
summary=$(awk '
  /^#[0-9]+ \[/ && !/\[internal\] load (build definition|metadata)/ { step[$1] = 1 }
  /^#[0-9]+ CACHED$/ { cached[$1] = 1 }
  END {
    n = 0; c = 0
    for (v in step) { n++; if (v in cached) c++ }
    print n, c
  }' "$work/second.log")
read -r steps cached <<<"$summary"
if [ "$steps" -eq 0 ] || [ "$cached" -ne "$steps" ]; then
  echo "kiln demo: FAILED: only $cached of the second build's $steps steps were CACHED" >&2
  exit 1
fi

step "Done in ${SECONDS}s: first build ${first_time}s, second build ${second_time}s (all $steps steps CACHED)"
