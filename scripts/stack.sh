# Sourced by the Node test scripts (scripts/browser/run.sh,
# scripts/interop/run.sh): run_on_stack starts the local stack in a
# temporary data dir on the ports given (so each runs beside `make demo`
# and the others), waits for it, exports its devstack.env, runs the
# command, and stops the stack; on failure it prints the stack's log tail.
# Usage: run_on_stack <kafka ports> <nats> <nats ws> <redis> <smtp> <mailpit> <http base> -- command...
run_on_stack() {
  local root data log pid
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  data="$(mktemp -d)"
  log="$data/devstack.log"
  "$root/bin/devstack" --data-dir "$data" --kafka-ports "$1" --nats-port "$2" \
    --nats-ws-port "$3" --redis-port "$4" --mailpit-smtp-port "$5" --mailpit-port "$6" \
    --http-port-base "$7" >"$log" 2>&1 &
  pid=$!
  shift 8
  # shellcheck disable=SC2064 # the values are this run's
  trap "kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf '$data'" EXIT
  for _ in $(seq 1 240); do
    if [ -f "$data/devstack.env" ] && grep -q '^DEMO_URL=' "$data/devstack.env"; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "devstack exited:"; cat "$log"; exit 1; fi
    sleep 0.5
  done
  grep -q '^DEMO_URL=' "$data/devstack.env" || { echo "devstack not ready in 120 s:"; tail -50 "$log"; exit 1; }
  set -a; . "$data/devstack.env"; set +a
  if ! "$@"; then echo "--- devstack log"; tail -80 "$log"; exit 1; fi
}
