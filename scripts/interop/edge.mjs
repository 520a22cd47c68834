// A Node client on a user's edge subject, as a signed-in app would be: the
// storefront's backend asks the user's region's notifier for a token
// (POST /v1/edge/token with the API token), and the client connects to the
// NATS websocket port with it (the plain client port refuses user tokens)
// and subscribes to the subject the token allows, edge.*.*.<user_id>.
// docs/interop.md walks through it; interop.test.mjs runs it.
//
//   node edge.mjs alice      (NOTIFIER_URL and API_TOKEN from devstack.env)
import { wsconnect, jwtAuthenticator } from "@nats-io/nats-core";
import WebSocket from "ws";

// Node before 22 has no WebSocket of its own; the client takes the global one.
globalThis.WebSocket ??= WebSocket;

// edgeToken asks the notifier for userId's credential: { jwt, ws_url, subject, expires_at }.
export async function edgeToken(notifierURL, apiToken, userId) {
  const resp = await fetch(`${notifierURL}/v1/edge/token`, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId }),
  });
  if (!resp.ok) throw new Error(`edge token for ${userId}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

// subscribeEdge connects with userId's token and calls onNotification with
// each notification (the Notification JSON) and its NATS message; it
// returns the connection (drain() or close() ends it).
export async function subscribeEdge({ notifierURL, apiToken, userId, onNotification }) {
  const tok = await edgeToken(notifierURL, apiToken, userId);
  const nc = await wsconnect({ servers: tok.ws_url, authenticator: jwtAuthenticator(tok.jwt), name: "interop-example" });
  nc.subscribe(tok.subject, { callback: (err, msg) => { if (!err) onNotification(msg.json(), msg); } });
  await nc.flush(); // the subscription is in place: nothing published from now on is missed
  return nc;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const userId = process.argv[2];
  const notifierURL = process.env.NOTIFIER_URL || process.env.NOTIFIER_URL_US_EAST_1;
  if (!userId || !notifierURL || !process.env.API_TOKEN) {
    console.error("usage: NOTIFIER_URL=… API_TOKEN=… node edge.mjs USER_ID");
    process.exit(2);
  }
  const nc = await subscribeEdge({
    notifierURL, apiToken: process.env.API_TOKEN, userId,
    onNotification: (n, msg) => console.log(msg.subject, JSON.stringify(n)),
  });
  console.error(`listening on edge.*.*.${userId} (Ctrl-C stops)`);
  for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => nc.drain().then(() => process.exit(0)));
}
