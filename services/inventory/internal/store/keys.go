package store

import "strconv"

// keyPrefix starts every key the inventory writes.
const keyPrefix = "inv:"

// tag is the prefix of a shard's keys. The braces are the Redis Cluster hash
// tag: every key of a shard hashes to one slot, so one script may touch them.
func tag(shard int) string { return keyPrefix + "{s" + strconv.Itoa(shard) + "}:" }

func levelsKey(shard int) string   { return tag(shard) + "levels" }
func productsKey(shard int) string { return tag(shard) + "products" }

// chunkKey records the results of the n-th chunk of shard of an idempotent
// request, so a retry re-applies none of it.
func chunkKey(shard int, idem string, n int) string {
	return tag(shard) + "idem:" + idem + ":" + strconv.Itoa(n)
}

// idemKey is the record of an idempotent request; its own hash tag, as it
// spans shards.
func idemKey(key string) string { return keyPrefix + "idem:{" + key + "}" }

// OutboxKey is the outbox stream of a shard.
func OutboxKey(shard int) string { return tag(shard) + "outbox" }

// OutboxIDKey holds the random id of a shard's outbox, which tells its
// records apart from another deployment's in a shared Kafka cluster.
func OutboxIDKey(shard int) string { return tag(shard) + "outbox-id" }

// RelayLeaseKey is the lease that lets one relay at a time publish a shard.
func RelayLeaseKey(shard int) string { return tag(shard) + "relay-lease" }
