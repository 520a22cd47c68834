// A real browser on the demo page: pick a user, restock one of their SKUs
// with the page's button, and see the notification arrive over the NATS
// websocket. Needs a running stack: DEMO_URL (from .data/devstack.env).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const DEMO_URL = process.env.DEMO_URL;
// Only when asked (make screenshot): a test run must not rewrite tracked files.
const SCREENSHOT = process.env.SCREENSHOT;

test("a restock from the page reaches the selected user live", { timeout: 120_000 }, async () => {
  assert.ok(DEMO_URL, "DEMO_URL must point at the running demo page");
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.on("console", (m) => console.log("page:", m.text()));
    const user = "user-00000";
    await page.goto(`${DEMO_URL}/?user=${user}`);
    await page.waitForSelector(`#status[data-live="${user}"]`, { timeout: 30_000 });

    // The first SKU this user wishlisted, in their region.
    const row = page.locator("#wishlist tbody tr").first();
    await row.waitFor();
    const sku = (await row.locator("td").nth(0).textContent()).trim();
    const region = (await row.locator("td").nth(1).textContent()).trim();
    const channels = (await row.locator("td").nth(2).textContent()).split(",").map((s) => s.trim());

    await page.click(`button[data-sku="${sku}"][data-region="${region}"]`);
    const note = page.locator(`#notes li[data-sku="${sku}"]`);
    await note.first().waitFor({ timeout: 60_000 });
    // One notification per channel the user chose, no more.
    await page.waitForFunction((n) => document.querySelectorAll("#notes li[data-notification-id]").length >= n, channels.length, { timeout: 30_000 });
    const ids = await page.$$eval("#notes li[data-notification-id]", (els) => els.map((e) => e.dataset.notificationId));
    assert.equal(new Set(ids).size, ids.length, "no notification shown twice");
    await page.waitForFunction(() => Number(document.querySelector("#stat-sent b")?.textContent || 0) > 0, null, { timeout: 30_000 });
    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });
  } finally {
    await browser.close();
  }
});

test("a user's token cannot read another user's notifications", { timeout: 60_000 }, async () => {
  assert.ok(DEMO_URL);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${DEMO_URL}/?user=user-00001`);
    await page.waitForSelector(`#status[data-live="user-00001"]`, { timeout: 30_000 });
    const err = await page.evaluate(async () => {
      const { NatsWS } = await import("./natsws.js");
      const tok = await (await fetch("/api/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user_id: "user-00001" }) })).json();
      let got = "";
      const c = new NatsWS(tok.ws_url, { jwt: tok.jwt, onError: (e) => (got = e) });
      await c.connect();
      c.subscribe("edge.*.*.user-00002", () => {});
      await c.flush().catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
      c.close();
      return got;
    });
    assert.match(err, /Permissions Violation/i);
  } finally {
    await browser.close();
  }
});

// The merchant's report page: a restock → delivery → click → order
// sequence made through the APIs (wishlist, inventory, the email's tracked
// link, the orders route) shows on it, in the table and the chart. Needs ENGAGEMENT_URL, INVENTORY_URL,
// WISHLIST_URL, MAILPIT_URL and API_TOKEN (devstack.env).
test("a restock, its delivery, a click and an order show on the report page", { timeout: 180_000 }, async () => {
  const { ENGAGEMENT_URL, INVENTORY_URL, WISHLIST_URL, MAILPIT_URL, API_TOKEN } = process.env;
  for (const [k, v] of Object.entries({ ENGAGEMENT_URL, INVENTORY_URL, WISHLIST_URL, MAILPIT_URL, API_TOKEN })) assert.ok(v, `${k} must be set`);
  const run = Date.now().toString(36);
  const sku = `report-${run}`, user = `reporter-${run}`, email = `${user}@demo.test`, region = "us-east-1";
  const call = async (method, url, body) => {
    const res = await fetch(url, {
      method, redirect: "manual",
      headers: { Authorization: `Bearer ${API_TOKEN}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 400) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
    return res;
  };
  const until = async (what, fn, ms = 60_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn().catch(() => undefined);
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  // A shopper with an email address wishlists a SKU that is sold out…
  await call("PUT", `${WISHLIST_URL}/v1/users/${user}/preferences`, { contacts: { email } });
  await call("PUT", `${WISHLIST_URL}/v1/users/${user}/wishlist/${sku}`, { region, channels: ["email"] });
  await call("PUT", `${INVENTORY_URL}/v1/stock/${sku}`, { region, quantity: 0 });
  // …the warehouse restocks it, the gateway emails them, they click the link.
  await call("PUT", `${INVENTORY_URL}/v1/stock/${sku}`, { region, quantity: 3, product: { title: "Report shoe", url: `https://shop.example/p/${sku}` } });
  const id = await until("the email", async () => {
    const r = await (await fetch(`${MAILPIT_URL}/api/v1/search?query=${encodeURIComponent(`to:"${email}"`)}`)).json();
    return r.messages && r.messages.length ? r.messages[0].ID : undefined;
  });
  const msg = await (await fetch(`${MAILPIT_URL}/api/v1/message/${id}`)).json();
  const link = msg.Text.match(new RegExp(`${ENGAGEMENT_URL.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/c/[A-Za-z0-9._-]+`));
  assert.ok(link, `no tracked link in the email:\n${msg.Text}`);
  const click = await fetch(link[0], { redirect: "manual" });
  assert.equal(click.status, 302);
  // Another SKU they wait for sells out: the demand ranking shows it.
  await call("PUT", `${WISHLIST_URL}/v1/users/${user}/wishlist/${sku}-next`, { region, channels: ["email"] });
  await call("PUT", `${INVENTORY_URL}/v1/stock/${sku}-next`, { region, quantity: 0 });
  // They buy it after the click: the attribution counts the line direct.
  await call("POST", `${ENGAGEMENT_URL}/v1/orders`, {
    order_id: `order-${run}`, user_id: user, ordered_at: new Date().toISOString(),
    currency: "EUR", lines: [{ sku, quantity: 2, unit_price: "19.99" }],
  });

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("console", (m) => console.log("reports page:", m.text()));
    await page.goto(`${ENGAGEMENT_URL}/reports`);
    // The page asks for the API token once.
    await page.fill("#token", API_TOKEN);
    await page.click("#load");
    const row = `#performance tr[data-sku="${sku}"][data-region="${region}"][data-channel="email"]`;
    const col = (c) => page.locator(`${row} td[data-col="${c}"]`).textContent();
    await page.waitForFunction((sel) => {
      const n = (c) => Number(document.querySelector(`${sel} td[data-col="${c}"]`)?.textContent || 0);
      return n("restocks") >= 1 && n("delivered") >= 1 && n("unique_clicks") >= 1 && n("direct_orders") >= 1;
    }, row, { timeout: 60_000, polling: 500 });
    assert.equal((await col("waiting")).trim(), "1");
    assert.equal((await col("restocks")).trim(), "1");
    assert.equal((await col("notified")).trim(), "1");
    assert.equal((await col("delivered")).trim(), "1");
    assert.equal((await col("clicks")).trim(), "1");
    assert.equal((await col("unique_clicks")).trim(), "1");
    assert.equal((await col("ctr")).trim(), "100.0%");
    assert.equal((await col("direct_orders")).trim(), "1");
    assert.equal((await col("assisted_orders")).trim(), "0");
    assert.match(await col("revenue"), /39\.98/);
    await page.waitForSelector(`#demand tr[data-sku="${sku}-next"][data-region="${region}"] td[data-col="waiting"]`, { timeout: 30_000 });
    assert.equal((await page.locator(`#demand tr[data-sku="${sku}-next"] td[data-col="waiting"]`).textContent()).trim(), "1");
    await page.waitForSelector(`#chart-demand rect[data-label="${sku}-next ${region}"]`, { timeout: 10_000 });
    // The chart has the SKU's unique click as a bar.
    await page.waitForSelector(`#chart-clicks rect[data-label="${sku}"][data-value="1"]`, { timeout: 10_000 });
    // And the lag line has at least one point.
    await page.waitForSelector("#chart-lag circle", { timeout: 10_000 });
    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-reports.png"), fullPage: true });
  } finally {
    await browser.close();
  }
});
