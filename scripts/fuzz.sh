#!/usr/bin/env bash
# Runs every fuzz target of the record decoders and the HTTP handlers for
# FUZZTIME each (default 60s): `make fuzz`, and CI. `make test` runs only
# their seed corpora. A failure leaves the input under the package's
# testdata/fuzz/, which `go test` then replays as a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${FUZZTIME:-60s}"
targets=(
  "topics/events FuzzDecodeRestockEvent"
  "topics/events FuzzDecodeStockLevel"
  "topics/events FuzzDecodeWishlistChange"
  "topics/events FuzzDecodeWishlistPreferences"
  "topics/events FuzzDecodeNotification"
  "topics/events FuzzDecodeDeliveryStatus"
  "services/inventory/internal/api FuzzPutStock"
  "services/inventory/internal/api FuzzBulkStock"
  "services/wishlist/internal/api FuzzPutEntry"
  "services/wishlist/internal/api FuzzPutPreferences"
  "services/wishlist/internal/api FuzzImport"
)
for t in "${targets[@]}"; do
  read -r pkg fn <<<"$t"
  echo "--- fuzz $pkg $fn for $time"
  go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$time" "backinstock/$pkg"
done
