// dashboard.js — the run's dashboard, from its public/ folder alone.
//
// Opened from disk (file://) it reads window.COTRAIN_DATA, which public/data.js sets (browsers
// will not fetch files from a file:// page); served by the coordinator (--http) it polls the JSON
// API: /api/status (run, data, checkpoints, groups, the last log lines) and /api/metrics?since=STEP
// (metrics lines after STEP). Each log line shown is checked here as `cotrain verify` checks it:
// its hash over the canonical JSON (RFC 8785) of the record without hash and sig, its link to the
// line before, and its Ed25519 signature by the run's key (WebCrypto).
(function () {
  "use strict";
  const live = location.protocol === "http:" || location.protocol === "https:";
  const POLL_MS = 2000;
  let status = null;
  let metrics = [];
  const plots = {};
  const verdicts = new Map(); // line text -> {ok, why}

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const short = (h) => (h ? h.slice(0, 16) + "\u2026" : "(none)");
  const num = (x, d) => (x === null || x === undefined ? "\u2013" : Number(x).toLocaleString(undefined, { maximumFractionDigits: d === undefined ? 0 : d }));

  // ---- canonical JSON (RFC 8785) of integers, strings, booleans, null, arrays, objects ----
  // JSON.stringify writes strings exactly as RFC 8785 does, and Array.prototype.sort compares
  // UTF-16 code units, RFC 8785's member order.
  function canonical(v) {
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    if (v !== null && typeof v === "object")
      return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
    return JSON.stringify(v);
  }
  const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)));

  let keyPromise = null;
  function publicKey() {
    if (!keyPromise)
      keyPromise = crypto.subtle.importKey("raw", unhex(status.run.public_key), { name: "Ed25519" }, false, ["verify"]);
    return keyPromise;
  }

  // One line's verdict: canonical form, hash, link to the line before, signature.
  async function check(line, prevLine) {
    let r;
    try { r = JSON.parse(line); } catch (e) { return { ok: false, why: "not JSON" }; }
    if (canonical(r) !== line) return { ok: false, why: "not canonical" };
    if (prevLine !== null && JSON.parse(prevLine).hash !== r.prev) return { ok: false, why: "chain broken" };
    const bare = Object.assign({}, r);
    delete bare.hash;
    delete bare.sig;
    const digest = hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical(bare))));
    if (digest !== r.hash) return { ok: false, why: "hash mismatch" };
    const good = await crypto.subtle.verify({ name: "Ed25519" }, await publicKey(), unhex(r.sig), new TextEncoder().encode(r.hash));
    return good ? { ok: true } : { ok: false, why: "bad signature" };
  }

  async function verifyLog() {
    const lines = status.log || [];
    if (!(window.crypto && crypto.subtle)) {
      for (const l of lines) if (!verdicts.has(l)) verdicts.set(l, { ok: null, why: "this browser cannot check (no WebCrypto here)" });
      return;
    }
    for (let i = 0; i < lines.length; i++) {
      if (verdicts.has(lines[i])) continue;
      try {
        verdicts.set(lines[i], await check(lines[i], i > 0 ? lines[i - 1] : null));
      } catch (e) {
        verdicts.set(lines[i], { ok: null, why: "this browser cannot check Ed25519" });
      }
    }
  }

  // ---- plots ----
  function plot(id, xs, series, opts) {
    const box = $(id);
    const n = xs.length;
    box.setAttribute("data-points", String(n));
    if (typeof uPlot === "undefined") {
      box.innerHTML = '<div class="empty">the plotting library (uPlot.iife.min.js) is missing</div>';
      return;
    }
    if (n === 0) {
      if (plots[id]) { plots[id].destroy(); delete plots[id]; }
      box.innerHTML = '<div class="empty">no points yet</div>';
      return;
    }
    const data = [xs].concat(series.map((s) => s.ys));
    if (plots[id] && plots[id].series.length === series.length + 1) {
      plots[id].setData(data);
      return;
    }
    if (plots[id]) plots[id].destroy();
    box.innerHTML = "";
    plots[id] = new uPlot({
      width: Math.max(300, box.clientWidth || 360),
      height: 200,
      scales: { x: { time: false }, y: opts && opts.log ? { distr: 3 } : {} },
      series: [{ label: opts && opts.x ? opts.x : "step" }].concat(series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, spanGaps: true, points: { show: s.points || false } }))),
      axes: [{}, { size: 60 }],
    }, data, box);
  }

  function renderPlots() {
    const steps = metrics.map((m) => m.step);
    const col = (k, f) => metrics.map((m) => (m[k] === null || m[k] === undefined ? null : f ? f(m[k]) : m[k]));
    plot("plot-loss", steps, [
      { label: "loss", color: "#c62828", ys: col("loss") },
      { label: "eval loss", color: "#1565c0", ys: col("eval_loss"), points: true },
    ]);
    plot("plot-loss-tokens", metrics.map((m) => m.tokens), [{ label: "loss", color: "#c62828", ys: col("loss") }], { x: "tokens" });
    plot("plot-lr", steps, [{ label: "lr", color: "#6a1b9a", ys: col("lr") }]);
    plot("plot-tps", steps, [{ label: "tokens/s", color: "#2e7d32", ys: col("tokens_per_s") }]);
    plot("plot-mfu", steps, [{ label: "MFU %", color: "#ef6c00", ys: col("mfu", (x) => 100 * x) }]);
    plot("plot-norm", steps, [{ label: "grad norm", color: "#455a64", ys: col("grad_norm") }]);
  }

  // ---- tables ----
  function fill(id, rows) {
    const body = $(id).tBodies[0];
    body.replaceChildren(...rows.map((cells) => {
      const tr = el("tr");
      for (const c of cells) {
        if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
        else if (typeof c === "object" && c !== null) tr.appendChild(el("td", c.attrs, c.text));
        else tr.appendChild(el("td", {}, c === undefined ? "" : String(c)));
      }
      return tr;
    }));
  }

  function summary(r) {
    const skip = new Set(["seq", "time", "type", "prev", "hash", "sig"]);
    return Object.entries(r).filter(([k]) => !skip.has(k)).map(([k, v]) => {
      if (Array.isArray(v)) return k + ": " + (v.length > 4 ? v.slice(0, 4).join(", ") + ", \u2026 (" + v.length + ")" : v.join(", "));
      if (typeof v === "string" && /^[0-9a-f]{64}$/.test(v)) return k + ": " + short(v);
      return k + ": " + v;
    }).join("; ");
  }

  function renderTables() {
    const s = status;
    // groups: tokens each trained, from the metrics (each step's tokens to its group)
    const per = new Map();
    let last = 0;
    for (const m of metrics) {
      const g = per.get(m.group) || { tokens: 0, steps: 0 };
      g.tokens += m.tokens - last;
      g.steps += 1;
      last = m.tokens;
      per.set(m.group, g);
    }
    // credit: the lineage's checkpoints each group committed, or in volunteer mode its deltas
    // the outer steps accepted (the coordinator adds them up)
    const names = new Set([...per.keys(), ...(s.groups || []).map((g) => g.group),
      ...(s.credit || []).map((c) => c.group)]);
    fill("groups", [...names].sort().map((n) => {
      const g = (s.groups || []).find((x) => x.group === n) || {};
      const t = per.get(n) || { tokens: 0, steps: 0 };
      const c = (s.credit || []).find((x) => x.group === n);
      // volunteer mode: the deltas outer steps accepted, by group and CURVE key id
      const credit = !c ? "\u2013" : num(c.tokens) + " tokens in " + c.commits +
        (s.volunteer ? " accepted delta(s)" + (c.key ? ", key " + c.key : "") : " checkpoint(s)");
      return [n, num(t.tokens), num(t.steps), credit, g.last_seen || "\u2013", g.leased === undefined ? "\u2013" : g.leased + (g.standby ? " (standby)" : "")];
    }));
    const excluded = (s.log || []).filter((l) => l.includes('"type":"data_excluded"')).length;
    const added = (s.log || []).filter((l) => l.includes('"type":"data_added"')).length;
    fill("data", [
      ["shards trained on", num(s.data.shards)],
      ["held out for evaluation", num(s.data.held_out)],
      ["tokens", num(s.data.tokens)],
      ["manifest sha256", { attrs: { class: "id" }, text: s.run.data_sha256 }],
      ["units committed / leased / epochs", num(s.units.committed) + " / " + num(s.units.leased) + " / " + num(s.units.epochs)],
      ["added mid-run", added ? added + " data_added record(s) in the latest log lines" : "none recorded"],
      ["opted out / excluded", excluded ? excluded + " exclusion record(s) in the latest log lines" : "none recorded"],
    ]);
    fill("checkpoints", (s.checkpoints || []).slice().reverse().map((c) => [c.step, { attrs: { class: "id", title: c.id }, text: c.id }, c.group, c.time, num(c.units)]));
    const lines = (s.log || []).slice().reverse();
    let bad = 0, ok = 0;
    fill("log", lines.map((l) => {
      let r = {};
      try { r = JSON.parse(l); } catch (e) { /* shown as unverified */ }
      const v = verdicts.get(l);
      const mark = !v ? { attrs: { class: "wait" }, text: "\u2026" }
        : v.ok ? { attrs: { class: "ok" }, text: "\u2713 signed" }
        : v.ok === null ? { attrs: { class: "wait" }, text: v.why }
        : { attrs: { class: "bad" }, text: "\u2717 " + v.why };
      if (v && v.ok) ok++;
      if (v && v.ok === false) bad++;
      return [r.seq, r.time, r.type, { attrs: { class: "rec" }, text: summary(r) }, mark];
    }));
    $("log-summary").textContent = "(the last " + lines.length + " of " + s.run.head_seq + " records; " + ok + " checked here" + (bad ? ", " + bad + " FAILED" : "") + ")";
  }

  function renderHeader() {
    const s = status, c = s.config || {}, m = c.model || {}, t = c.train || {};
    const lastM = metrics.length ? metrics[metrics.length - 1] : null;
    const head = s.checkpoints && s.checkpoints.length ? s.checkpoints[s.checkpoints.length - 1] : null;
    $("run-id").textContent = "config " + short(s.run.config_sha256);
    $("run-line").textContent = "key " + s.run.fingerprint + " \u00b7 data " + short(s.run.data_sha256) + " \u00b7 model " + (m.n_layer || "?") + " layers, d_model " + (m.d_model || "?") + ", seq_len " + (m.seq_len || "?") + " \u00b7 updated " + s.updated;
    $("source").textContent = live ? "live from the coordinator (every " + POLL_MS / 1000 + " s)" : "from the files of public/ (reload to update)";
    const cards = [
      ["step", lastM ? num(lastM.step) + " / " + num(t.steps) : "\u2013"],
      ["loss", lastM ? num(lastM.loss, 4) : "\u2013"],
      ["tokens", lastM ? num(lastM.tokens) : "\u2013"],
      ["head checkpoint", head ? "step " + head.step : "none yet"],
      ["log records", num(s.run.head_seq)],
    ];
    $("progress").replaceChildren(...cards.map(([k, v]) => { const d = el("div", { class: "card" }, k); d.appendChild(el("b", {}, v)); return d; }));
  }

  async function render() {
    if (!status) return;
    renderHeader();
    renderPlots();
    renderTables();
    await verifyLog();
    renderTables();
  }

  async function poll() {
    try {
      const r = await fetch("/api/status", { cache: "no-store" });
      if (r.ok) status = await r.json();
      const since = metrics.length ? metrics[metrics.length - 1].step : 0;
      const m = await fetch("/api/metrics?since=" + since, { cache: "no-store" });
      if (m.ok) {
        const text = await m.text();
        for (const line of text.split("\n")) if (line.trim()) metrics.push(JSON.parse(line));
      }
      await render();
    } catch (e) {
      $("source").textContent = "the coordinator does not answer (" + e.message + "); trying again";
    }
    setTimeout(poll, POLL_MS);
  }

  if (live) {
    poll();
  } else if (window.COTRAIN_DATA) {
    status = window.COTRAIN_DATA;
    metrics = status.metrics || [];
    render();
  } else {
    $("run-line").textContent = "no data: open the index.html of a run's public/ folder (it loads data.js beside it)";
  }
})();
