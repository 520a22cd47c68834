// docs/interop.md's examples against a running local stack (run.sh starts
// one): a restock made through the inventory API must reach the kafkajs
// consumer group (consumer.mjs) on inventory.restock.v1 and
// notify.<region>.app.v1 as well-formed records, and the user's NATS
// websocket client (edge.mjs) must receive the notifications. A RestockEvent
// kcat writes (the docs' kcat producer) must go the same way. Needs the
// devstack.env variables; kcat on PATH (CI: a missing kcat fails).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { consume } from "./consumer.mjs";
import { subscribeEdge } from "./edge.mjs";

const env = process.env;
const region = "us-east-1";
const notifierURL = env.NOTIFIER_URL_US_EAST_1;
const run = Date.now().toString(36);
const user = `interop-${run}`;
const sku = `interop-${run}`; // restocked through the inventory API
const kcatSku = `interop-kcat-${run}`; // restocked by a RestockEvent kcat writes

const schemas = Object.fromEntries(["RestockEvent", "Notification"].map((name) =>
  [name, JSON.parse(readFileSync(new URL(`../../topics/schemas/${name}.schema.json`, import.meta.url)))]));

// wellFormed checks a record value against its JSON Schema's required
// fields, property types and additionalProperties (enough to catch a
// record any client would misread; the Go decoders check the rest).
function wellFormed(schemaName, value) {
  const s = schemas[schemaName];
  assert.equal(typeof value, "object", `${schemaName}: not a JSON object`);
  for (const f of s.required) assert.ok(f in value, `${schemaName}: required field ${f} missing in ${JSON.stringify(value)}`);
  for (const [f, v] of Object.entries(value)) {
    const p = s.properties[f];
    assert.ok(p || s.additionalProperties !== false, `${schemaName}: unknown field ${f}`);
    const type = Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;
    if (p?.type) assert.ok([p.type].flat().includes(type) || (p.type === "number" && type === "integer"), `${schemaName}.${f}: ${type}, want ${p.type}`);
  }
}

const hex32 = (s) => createHash("sha256").update(s).digest("hex").slice(0, 32);

const records = []; // {topic, partition, key, headers, value}
const edge = []; // {subject, value}
let consumer, nc;

async function api(method, url, body) {
  const resp = await fetch(url, { method, headers: { Authorization: `Bearer ${env.API_TOKEN}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const text = await resp.text();
  assert.ok(resp.ok, `${method} ${url}: ${resp.status} ${text}`);
  return JSON.parse(text);
}

async function eventually(what, fn, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = fn();
    if (got) return got;
    if (Date.now() > end) assert.fail(`within ${timeoutMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  for (const k of ["KAFKA_BROKERS", "API_TOKEN", "INVENTORY_URL", "WISHLIST_URL", "NOTIFIER_URL_US_EAST_1"]) {
    assert.ok(env[k], `${k} must be set (source the stack's devstack.env)`);
  }
  for (const s of [sku, kcatSku]) {
    await api("PUT", `${env.WISHLIST_URL}/v1/users/${user}/wishlist/${s}`, { region, channels: ["app", "web"] });
  }
  nc = await subscribeEdge({ notifierURL, apiToken: env.API_TOKEN, userId: user, onNotification: (value, msg) => edge.push({ subject: msg.subject, value }) });
  consumer = await consume({
    brokers: env.KAFKA_BROKERS.split(","),
    groupId: `interop-${run}`,
    topics: [`notify.${region}.app.v1`, "inventory.restock.v1"],
    eachMessage: async ({ topic, partition, message }) => {
      const headers = Object.fromEntries(Object.entries(message.headers || {}).map(([k, v]) => [k, v?.toString()]));
      records.push({ topic, partition, key: message.key?.toString(), headers, value: JSON.parse(message.value.toString()) });
    },
  });
  // Sold out, then back: the second call is the restock (episode 1).
  await api("PUT", `${env.INVENTORY_URL}/v1/stock/${sku}`, { region, quantity: 0 });
  const r = await api("PUT", `${env.INVENTORY_URL}/v1/stock/${sku}`, { region, quantity: 7, product: { title: "Interop kettle", url: `https://shop.example/p/${sku}` } });
  assert.equal(r.restock, true, `the second update is a restock: ${JSON.stringify(r)}`);
});

after(async () => {
  await consumer?.disconnect();
  await nc?.close();
});

test("kafkajs reads the restock from inventory.restock.v1", { timeout: 90_000 }, async () => {
  const rec = await eventually(`a restock of ${sku} read by kafkajs`, () => records.find((m) => m.topic === "inventory.restock.v1" && m.key === sku));
  wellFormed("RestockEvent", rec.value);
  assert.equal(rec.headers["schema"], "RestockEvent/1");
  assert.equal(rec.headers["content-type"], "application/json");
  assert.deepEqual([rec.value.sku, rec.value.region, rec.value.quantity, rec.value.previous_quantity, rec.value.episode], [sku, region, 7, 0, 1]);
  assert.equal(rec.value.event_id, hex32(`restock|${sku}|${region}|1`));
});

test(`kafkajs reads the notification from notify.${region}.app.v1`, { timeout: 90_000 }, async () => {
  const rec = await eventually(`${user}'s app notification read by kafkajs`, () => records.find((m) => m.topic === `notify.${region}.app.v1` && m.key === user && m.value.sku === sku));
  wellFormed("Notification", rec.value);
  assert.equal(rec.headers["schema"], "Notification/1");
  const n = rec.value;
  assert.deepEqual([n.user_id, n.sku, n.region, n.channel, n.episode, n.title], [user, sku, region, "app", 1, "Interop kettle"]);
  assert.equal(n.restock_event_id, hex32(`restock|${sku}|${region}|1`));
  assert.equal(n.notification_id, hex32(`notification|${user}|${sku}|${region}|1|app`));
});

test("the nats client on the user's edge subject receives the notifications", { timeout: 90_000 }, async () => {
  const mine = () => edge.filter((m) => m.value.sku === sku);
  await eventually(`${user}'s app and web notifications on the edge`, () => mine().length >= 2);
  for (const m of mine()) {
    wellFormed("Notification", m.value);
    assert.equal(m.subject, `edge.${region}.${m.value.channel}.${user}`);
    assert.equal(m.value.notification_id, hex32(`notification|${user}|${sku}|${region}|1|${m.value.channel}`));
  }
  assert.deepEqual(mine().map((m) => m.value.channel).sort(), ["app", "web"], "one notification per channel, none twice");
});

test("a RestockEvent kcat writes reaches kafkajs and the edge", { timeout: 90_000 }, async (t) => {
  if (spawnSync("kcat", ["-V"]).error) {
    assert.ok(!env.CI, "kcat is not on PATH, and CI must run this test: install the Debian package kcat (.ci/run does)");
    t.skip("kcat is not on PATH (apt-get install kcat)");
    return;
  }
  // docs/interop.md's kcat producer: the event id is derived from sku,
  // region and episode; key = sku, partitioned as our producers do.
  const ev = {
    event_id: hex32(`restock|${kcatSku}|${region}|1`), sku: kcatSku, region, quantity: 3, previous_quantity: 0, episode: 1,
    occurred_at: new Date().toISOString(), product: { title: "Kcat kettle", url: `https://shop.example/p/${kcatSku}` },
  };
  const out = spawnSync("kcat", ["-P", "-b", env.KAFKA_BROKERS.split(",")[0], "-t", "inventory.restock.v1", "-K", "\t",
    "-X", "partitioner=murmur2_random", "-H", "content-type=application/json", "-H", "schema=RestockEvent/1"],
  { input: `${kcatSku}\t${JSON.stringify(ev)}\n`, encoding: "utf8" });
  assert.equal(out.status, 0, `kcat: ${out.stderr}`);
  const rec = await eventually(`${user}'s notification of ${kcatSku} read by kafkajs`, () => records.find((m) => m.topic === `notify.${region}.app.v1` && m.key === user && m.value.sku === kcatSku));
  wellFormed("Notification", rec.value);
  assert.equal(rec.value.restock_event_id, ev.event_id);
  await eventually(`${user}'s notifications of ${kcatSku} on the edge`, () => edge.filter((m) => m.value.sku === kcatSku).length >= 2);
});
