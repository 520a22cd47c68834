#!/usr/bin/env bash
# Starts the local stack in a temporary data dir, runs the browser test against
# its demo page, and stops the stack. Used by `make browser-test` and CI.
# SCREENSHOT=<path> also saves the page (`make screenshot` refreshes
# docs/demo.png); without it nothing tracked is written.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="$(mktemp -d)"
log="$data/devstack.log"
# Ports of its own, so it runs while `make demo` holds the default ones.
"$root/bin/devstack" --data-dir "$data" --kafka-ports 29092,29093,29094 --nats-port 24222 \
  --nats-ws-port 24280 --redis-port 26379 --mailpit-smtp-port 21025 --mailpit-port 28025 \
  --http-port-base 28080 >"$log" 2>&1 &
pid=$!
cleanup() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  if [ -f "$data/devstack.env" ] && grep -q '^DEMO_URL=' "$data/devstack.env"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "devstack exited:"; cat "$log"; exit 1; fi
  sleep 0.5
done
grep -q '^DEMO_URL=' "$data/devstack.env" || { echo "devstack not ready in 120 s:"; tail -50 "$log"; exit 1; }
set -a; . "$data/devstack.env"; set +a
cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
if ! node --test demo.test.mjs; then echo "--- devstack log"; tail -80 "$log"; exit 1; fi
