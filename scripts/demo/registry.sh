# shellcheck shell=bash
# A throw-away registry for the demo: Debian's `docker-registry` (the CNCF distribution server)
# on 127.0.0.1, on a port the kernel picks, with its config, storage and log in a directory the
# caller owns. Sourced by scripts/demo.sh; defines registry_start and registry_stop.

# registry_start DIR: starts the registry with everything under DIR and waits until it listens.
# Sets REGISTRY_ADDR (127.0.0.1:PORT) and REGISTRY_PID.
registry_start() {
  local dir=$1
  mkdir -p "$dir/storage"
  # Port 0 lets the kernel choose a free port, so there is no race with other programs; the
  # registry logs the address it bound, which is also the sign that it is ready.
  cat >"$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: kiln-demo-$$-$RANDOM
CONFIG
  : >"$dir/registry.log"
  (
    # REGISTRY_* variables would override the config file: keep the caller's out.
    for var in $(compgen -e); do
      case $var in REGISTRY_*) unset "$var" ;; esac
    done
    exec /usr/bin/docker-registry serve "$dir/config.yml"
  ) >"$dir/registry.log" 2>&1 </dev/null &
  REGISTRY_PID=$!
  REGISTRY_ADDR=
  for _ in {1..200}; do
    REGISTRY_ADDR=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$dir/registry.log")
    [ -n "$REGISTRY_ADDR" ] && return 0
    if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
      echo "kiln demo: docker-registry exited at start; its log:" >&2
      cat "$dir/registry.log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "kiln demo: docker-registry did not start listening within 10s; its log:" >&2
  cat "$dir/registry.log" >&2
  return 1
}

# registry_stop: stops the registry started by registry_start, if it runs.
registry_stop() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
  fi
}
