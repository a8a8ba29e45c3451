#!/usr/bin/env bash
# The benchmark of issues 4 and 5 (as root): builds four generated workloads with kiln's embedded
# builder and with the Docker engine's BuildKit, alternating, then exports and pushes the image of
# a fifth (a 400 MB layer, gzip level 6, against `docker push`), and prints the medians and the
# ratio kiln/BuildKit of each figure against the targets. Arguments go to kiln-bench:
#
#   ./scripts/bench.sh                      # every workload, 3 runs per figure
#   ./scripts/bench.sh --runs 1 --only a,d  # a quick look
#   ./scripts/bench.sh --json /tmp/b.json   # also every raw sample as JSON
#
# Like scripts/demo.sh it installs what it needs: a release build of kiln and kiln-bench, a
# busybox base image (Debian's busybox-static, umoci) pushed with skopeo to Debian's
# docker-registry on 127.0.0.1, and a Docker engine (scripts/dockerd.sh). The workloads and
# kiln's state directories go to /var/tmp/kiln-bench (--work); the registry lives in a temporary
# directory removed on exit. The benchmark prunes the engine's whole build cache (cold builds):
# do not run it on an engine whose cache you care about.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
trap 'echo "kiln bench: FAILED at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND" >&2' ERR

if [ "$(id -u)" != 0 ]; then
  echo "kiln bench: run this as root (RUN steps use runc, and the Docker engine is root's)" >&2
  exit 1
fi

step "Checking prerequisites (Debian packages, Rust toolchain)"
source scripts/prereqs.sh
# GNU time reports the peak memory (max RSS) of the kiln process.
if [ ! -x /usr/bin/time ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends time
fi

step "Building kiln and kiln-bench (cargo build --release)"
cargo build --release --locked --quiet -p kiln-cli -p kiln-bench

step "Starting the Docker engine"
bash scripts/dockerd.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
source scripts/demo/registry.sh
cleanup() {
  registry_stop
  rm -rf "$work"
}
trap cleanup EXIT

step "Starting a registry on 127.0.0.1 (Debian's docker-registry)"
registry_start "$work/registry"
base=$REGISTRY_ADDR/library/busybox:1.36

step "Making the base image $base (busybox-static, umoci, skopeo)"
scripts/demo/busybox-image.sh "$work/busybox" 1.36
skopeo copy --quiet --dest-tls-verify=false "oci:$work/busybox:1.36" "docker://$base"

step "Running kiln-bench (several minutes)"
./target/release/kiln-bench --base "$base" --kiln ./target/release/kiln "$@"
