#!/usr/bin/env bash
# Starts the local stack in a temporary data dir, runs docs/interop.md's
# Node examples against it (interop.test.mjs: kafkajs on the Kafka topics,
# a NATS websocket client on a user's edge subject, a kcat producer), and
# stops the stack. Used by `make interop-test` and CI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../stack.sh
. "$here/../stack.sh"
cd "$here"
[ -d node_modules/kafkajs ] || npm ci --no-audit --no-fund
# Ports of its own, so it runs while `make demo` holds the default ones.
run_on_stack 23092,23093,23094 23222 23280 23379 23025 23825 23400 -- node --test interop.test.mjs
