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
