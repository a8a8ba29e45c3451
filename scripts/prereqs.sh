#!/usr/bin/env bash
# Installs what kiln's build, demo and tests need on a fresh Debian machine (run as root).
# Idempotent: installs only what is missing. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

# Debian packages the build and the tests use: a C compiler for a few -sys crates; OCI runtimes
# for RUN steps; a real registry, busybox-static (test base images), skopeo, umoci and
# oci-image-tool (to check outputs with tools kiln did not write), the archivers and git that ADD
# and contexts use, and the Docker engine (docker.io: dockerd with its BuildKit, containerd,
# Debian's docker CLI) that the parity tests compare kiln's results with.
APT_PACKAGES=(gcc pkg-config ca-certificates runc crun docker-registry busybox-static skopeo umoci
  xz-utils bzip2 zstd git openssh-client openssh-server docker.io oci-image-tool)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "kiln: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Rust toolchain (edition 2024 needs rustc >= 1.85; the workspace asks for 1.90).
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "kiln: no Rust toolchain found; installing it with rustup" >&2
  command -v curl >/dev/null 2>&1 || apt-get install -y -qq curl
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi
