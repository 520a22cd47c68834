// natsws.js: a minimal NATS client over websocket, enough for a browser to
// receive its own edge notifications: CONNECT (with a user JWT), SUB, MSG/HMSG,
// PING/PONG and -ERR. Written for the demo so the page needs no npm build.
const enc = new TextEncoder();
const dec = new TextDecoder();

export class NatsWS {
  constructor(url, { jwt, name = "backinstock-demo", onError = () => {}, onClose = () => {} } = {}) {
    this.url = url;
    this.jwt = jwt;
    this.name = name;
    this.onError = onError;
    this.onClose = onClose;
    this.subs = new Map();
    this.sid = 0;
    this.buf = new Uint8Array(0);
    this.pongs = [];
  }

  // connect resolves once the server has accepted CONNECT (answered our PING).
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let ready = false;
      ws.onmessage = (ev) => this.feed(new Uint8Array(ev.data));
      ws.onerror = () => { if (!ready) reject(new Error("websocket error")); };
      ws.onclose = () => { if (!ready) reject(new Error(this.lastErr || "connection closed")); this.onClose(this.lastErr); };
      this.onInfo = () => {
        const opts = { verbose: false, pedantic: false, protocol: 1, headers: true, no_responders: true, lang: "js-demo", version: "0.1", name: this.name };
        if (this.jwt) opts.jwt = this.jwt;
        this.send(`CONNECT ${JSON.stringify(opts)}\r\nPING\r\n`);
        this.pongs.push(() => { ready = true; resolve(this); });
      };
    });
  }

  send(s) { this.ws.send(enc.encode(s)); }

  // subscribe calls cb({subject, headers, data}) for every message; errors for
  // this subscription (a permissions violation) arrive through onError.
  subscribe(subject, cb) {
    const sid = ++this.sid;
    this.subs.set(String(sid), { subject, cb });
    this.send(`SUB ${subject} ${sid}\r\n`);
    return sid;
  }

  // flush resolves when the server has processed everything sent so far.
  flush() { return new Promise((resolve) => { this.pongs.push(resolve); this.send("PING\r\n"); }); }

  close() { if (this.ws) this.ws.close(); }

  feed(chunk) {
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf); b.set(chunk, this.buf.length);
    this.buf = b;
    for (;;) {
      const eol = indexOfCRLF(this.buf);
      if (eol < 0) return;
      const line = dec.decode(this.buf.subarray(0, eol));
      const [op, ...args] = line.split(" ");
      if (op === "MSG" || op === "HMSG") {
        const total = Number(args[args.length - 1]);
        const hdrLen = op === "HMSG" ? Number(args[args.length - 2]) : 0;
        if (this.buf.length < eol + 2 + total + 2) return; // wait for the payload
        const body = this.buf.subarray(eol + 2, eol + 2 + total);
        this.buf = this.buf.subarray(eol + 2 + total + 2);
        const sub = this.subs.get(args[1]);
        if (sub) sub.cb({ subject: args[0], headers: parseHeaders(dec.decode(body.subarray(0, hdrLen))), data: dec.decode(body.subarray(hdrLen)) });
        continue;
      }
      this.buf = this.buf.subarray(eol + 2);
      if (op === "INFO") { if (this.onInfo) { const f = this.onInfo; this.onInfo = null; f(JSON.parse(args.join(" "))); } }
      else if (op === "PING") this.send("PONG\r\n");
      else if (op === "PONG") { const f = this.pongs.shift(); if (f) f(); }
      else if (op === "-ERR") { this.lastErr = line.slice(5).replace(/^'|'$/g, ""); this.onError(this.lastErr); }
    }
  }
}

function indexOfCRLF(b) {
  for (let i = 0; i + 1 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10) return i;
  return -1;
}

function parseHeaders(s) {
  const h = {};
  for (const line of s.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) h[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return h;
}
