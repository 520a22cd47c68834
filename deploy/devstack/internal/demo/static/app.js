import { NatsWS } from "./natsws.js";

const $ = (s) => document.querySelector(s);
let cfg, conn;

async function api(path, opts = {}) {
  const r = await fetch(path, { headers: { "Content-Type": "application/json" }, ...opts });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
  return body;
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) k === "class" ? (e.className = v) : e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

async function loadUsers() {
  const users = await api("/api/users");
  const sel = $("#user");
  for (const u of users) sel.append(el("option", { value: u.user_id }, `${u.user_id} (${u.region})`));
  sel.onchange = () => selectUser(sel.value);
  const wanted = new URLSearchParams(location.search).get("user");
  if (wanted) sel.value = wanted;
  await selectUser(sel.value);
}

async function selectUser(userID) {
  if (conn) conn.close();
  $("#notes").replaceChildren(el("li", { class: "empty", id: "noteEmpty" }, "Nothing yet. Restock one of this user's SKUs."));
  const wl = await api(`/api/users/${encodeURIComponent(userID)}/wishlist`);
  $("#wishlist tbody").replaceChildren(...wl.items.map((i) => el("tr", {}, el("td", {}, i.sku), el("td", {}, i.region), el("td", {}, i.channels.join(", ")))));
  const tok = await api("/api/token", { method: "POST", body: JSON.stringify({ user_id: userID }) });
  $("#status").textContent = "connecting…";
  conn = new NatsWS(tok.ws_url || cfg.ws_url, { jwt: tok.jwt, onError: (e) => ($("#status").textContent = "edge error: " + e) });
  try {
    await conn.connect();
  } catch (e) {
    $("#status").textContent = "edge connection failed: " + e.message;
    return;
  }
  conn.subscribe(tok.subject, (m) => showNotification(JSON.parse(m.data), m.subject));
  await conn.flush();
  $("#status").textContent = `live on ${tok.subject}`;
  $("#status").dataset.live = userID;
}

function showNotification(n, subject) {
  const empty = $("#noteEmpty");
  if (empty) empty.remove();
  const li = el("li", { class: `ch-${n.channel}`, "data-notification-id": n.notification_id, "data-sku": n.sku },
    el("div", {}, el("b", {}, n.title || n.sku), " — ", n.body || "back in stock"),
    el("div", { class: "meta" }, `${n.channel} · ${n.region} · episode ${n.episode} · ${subject}`));
  $("#notes").prepend(li);
}

async function loadSkus() {
  const skus = await api("/api/skus");
  $("#skus tbody").replaceChildren(...skus.map((s) => {
    const qty = el("input", { type: "number", min: "1", value: "5", style: "width:4em", "aria-label": `units of ${s.sku}` });
    const btn = el("button", { "data-sku": s.sku, "data-region": s.region }, "Restock");
    btn.onclick = async () => {
      btn.disabled = true;
      try { await api("/api/restock", { method: "POST", body: JSON.stringify({ sku: s.sku, region: s.region, quantity: Number(qty.value) }) }); }
      catch (e) { alert(e.message); }
      finally { btn.disabled = false; }
    };
    return el("tr", {}, el("td", {}, s.title ? `${s.sku} · ${s.title}` : s.sku), el("td", {}, s.region), el("td", {}, String(s.wishlisters)), el("td", {}, qty), el("td", {}, btn));
  }));
}

const STAGES = [["restocks", "restocks"], ["produced", "fan-out produced"], ["deduped", "deduped"], ["sent", "sent to edge"], ["held", "held (quiet hours)"], ["lag", "consumer lag"]];

async function refreshStats() {
  try {
    const s = await api("/api/stats");
    $("#stats").replaceChildren(...STAGES.map(([k, label]) => el("div", { class: "stat", id: `stat-${k}` }, el("b", {}, String(Math.round(s[k] || 0))), el("small", {}, label))));
  } catch (e) { /* the next tick tries again */ }
}

async function main() {
  cfg = await api("/api/config");
  if (cfg.mailpit_url) {
    // The email channel goes through the gateways to the local Mailpit.
    const a = $("#mailpit");
    a.href = cfg.mailpit_url;
    a.hidden = false;
  }
  await Promise.all([loadUsers(), loadSkus(), refreshStats()]);
  setInterval(refreshStats, 1000);
}
main();
