#!/usr/bin/env bash
# Makes sure a Docker engine (Debian's docker.io) answers on /var/run/docker.sock, for the tests
# that compare kiln's results with the engine's BuildKit. Run it (`bash scripts/dockerd.sh`);
# scripts/test.sh does. Exits non-zero, with the end of the daemon's log, when it cannot start.
#
# The daemon is started without a bridge and without iptables rules, so that no container ever
# gets a bridge address and nothing on the host's network changes: builds through the engine's
# builder then need `--network host` for their RUN steps. Its logs go to $KILN_DOCKERD_LOG
# (default /var/log/kiln-dockerd.log); a daemon that already answers is used as it is.
#
# Debian's docker.io 20.10 ships its CLI as /usr/bin/docker; another `docker` earlier in PATH
# (such as a newer CLI in /usr/local/bin without the buildx plugin) refuses DOCKER_BUILDKIT=1
# builds, so this script checks with Debian's CLI and the tests use that one too (KILN_DOCKER
# overrides it).

kiln_start_dockerd() {
  local docker=${KILN_DOCKER:-/usr/bin/docker}
  local log=${KILN_DOCKERD_LOG:-/var/log/kiln-dockerd.log}
  local timeout=${KILN_DOCKERD_TIMEOUT:-60}

  if ! command -v dockerd >/dev/null 2>&1 || [ ! -x "$docker" ]; then
    echo "kiln: dockerd or $docker is missing: install Debian's docker.io (scripts/prereqs.sh does)" >&2
    return 1
  fi
  if "$docker" version >/dev/null 2>&1; then
    return 0
  fi

  echo "kiln: starting dockerd (no bridge, no iptables), logs in $log" >&2
  mkdir -p "$(dirname "$log")"
  # setsid: the daemon outlives this script and is not hit by signals sent to the test run's
  # process group. (This script runs without job control, so setsid does not fork and $! is
  # the daemon itself.)
  setsid dockerd --bridge=none --iptables=false --ip6tables=false \
    --host=unix:///var/run/docker.sock >>"$log" 2>&1 </dev/null &
  local pid=$!

  local waited=0
  until "$docker" version >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kiln: dockerd exited before answering; last lines of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    if ((waited >= timeout * 10)); then
      echo "kiln: dockerd (pid $pid) did not answer on /var/run/docker.sock within ${timeout}s; stopping it; last lines of $log:" >&2
      kill "$pid" 2>/dev/null || true
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "kiln: dockerd (pid $pid) answers on /var/run/docker.sock" >&2
}

set -euo pipefail
kiln_start_dockerd
