#!/usr/bin/env bash
# Starts the local stack in a temporary data dir, runs the browser test against
# its demo page, and stops the stack. Used by `make browser-test` and CI.
# SCREENSHOT=<path> also saves the page (`make screenshot` refreshes
# docs/demo.png); without it nothing tracked is written.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../stack.sh
. "$here/../stack.sh"
cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
# Ports of its own, so it runs while `make demo` holds the default ones.
run_on_stack 29092,29093,29094 24222 24280 26379 21025 28025 28080 -- node --test demo.test.mjs
