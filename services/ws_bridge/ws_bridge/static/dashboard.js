/* The built-in live dashboard: one websocket, history first (HBase) then live (Kafka), follows simulated time.
   Every value from the pipeline is rendered as text (DOM nodes + textContent, never markup), so hostile strings on
   the topics stay strings; the page runs under the bridge's strict CSP (no inline script or style). */
"use strict";
(() => {
  const COLORS = { TH1: "#ff7a59", TH2: "#4fb3ff", HVAC1: "#f5c542", HVAC2: "#c49bff", MiAC1: "#5ad19a",
    MiAC2: "#2f9e8f", W1: "#5fa8ff", Etot: "#f5c542", Wtot: "#5fa8ff", Mov1: "#ff6fae", rest: "#ff7a59" };
  const DAY = 864e5, WINDOW_15MIN = 2 * DAY, DAYS_SHOWN = 14, KEEP_PER_SERIES = 3000, KEEP_ROWS = 200;
  const CLIP = 300;  // longest text shown in a table cell (4 MB values stay in memory, not in the DOM)
  const TOKEN_KEY = "iotpipe-token";
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);

  // The bearer token lives in this tab's sessionStorage only; `/#token=<token>` hands one over once.
  const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
  if (hashToken) { sessionStorage.setItem(TOKEN_KEY, hashToken); history.replaceState(null, "", location.pathname + location.search); }
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const base = location.pathname.replace(/[^/]*$/, "");

  const state = {
    site: params.get("site") || localStorage.getItem("iotpipe-site") || "",
    tz: "UTC", defaultTz: "UTC", zones: {}, ws: null, records: 0, simNow: 0, lastUpdate: null, backoff: 1000,
    raw: new Map(),      // sensor -> Map(key -> [ms, value, seq])
    agg: new Map(),      // name -> Map(day -> aggregate + {_rev: bool, _ms})
    late: new Map(), dead: new Map(), fresh: new Set(),
  };
  window.iotpipe = state;  // read by the browser tests

  // --- text and DOM helpers (the only way data reaches the page) -------------------------------------------------
  function clip(value) {
    const s = String(value);
    return s.length > CLIP ? `${s.slice(0, CLIP)}…` : s;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = clip(text);
    return node;
  }

  /* headers: ["time", ...]; rows: [{cells: [text | {text, cls, badge}], cls}] */
  function renderTable(container, headers, rows, emptyText) {
    if (!rows.length) { container.replaceChildren(el("div", "empty", emptyText)); return; }
    const table = el("table"), head = el("tr");
    for (const h of headers) head.appendChild(el("th", "", h));
    table.appendChild(head);
    for (const row of rows) {
      const tr = el("tr", row.cls || "");
      for (const cell of row.cells) {
        const c = typeof cell === "object" && cell !== null ? cell : { text: cell };
        const td = el("td", c.cls || "");
        if (c.badge) td.appendChild(el("span", "badge", c.text)); else td.textContent = clip(c.text);
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    container.replaceChildren(table);
  }

  const num = (v, digits = 2) => (typeof v === "number" ? v.toFixed(digits) : "–");
  const localTime = (ms) => (isFinite(ms) ? Charts.timeText(ms) : "–");
  const localDay = (ms) => localTime(ms - 1).slice(0, 10);  // a reading at 00:00 closes the previous day

  // --- HTTP API and websocket (token in the Authorization header, websocket by short-lived ticket) ----------------
  function api(path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (token()) headers.set("Authorization", `Bearer ${token()}`);
    return fetch(base + path, { ...init, headers, cache: "no-store" });
  }

  async function wsUrl() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${base}ws`;
    if (!token()) return url;  // auth off: no ticket needed
    const res = await api("api/v1/ws-ticket", { method: "POST" });
    if (res.status === 401) throw new AuthNeeded();
    if (!res.ok) throw new Error(`ws-ticket: HTTP ${res.status}`);
    const { ticket } = await res.json();
    return `${url}?ticket=${encodeURIComponent(ticket)}`;
  }

  class AuthNeeded extends Error {}

  function askForToken() { setConn(false, "token needed"); $("auth").hidden = false; }

  async function connect() {
    let url;
    try {
      url = await wsUrl();  // a new ticket for every (re)connect
    } catch (e) {
      if (e instanceof AuthNeeded) { askForToken(); return; }
      setConn(false, "bridge unreachable");
      retry();
      return;
    }
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = () => { setConn(true, "live"); state.backoff = 1000; };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { console.warn("bridge sent a frame that is not JSON"); return; }
      onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (ev.code === 1008) { askForToken(); return; }
      setConn(false, `closed (${ev.code})`);
      retry();
    };
  }

  function retry() {
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 10000);
  }

  function setConn(on, text) { const c = $("conn"); c.textContent = text; c.className = `pill ${on ? "on" : "off"}`; }

  function send(msg) { if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(msg)); }

  function subscribeAll() {
    if (!state.site) { send({ type: "subscribe", id: "discover", stream: "raw" }); return; }
    const sites = [state.site];
    send({ type: "subscribe", id: "raw", stream: "raw", sites, last: 300 });
    send({ type: "subscribe", id: "agg", stream: "aggregates", sites, last: 40 });
    send({ type: "subscribe", id: "late", stream: "late", sites, last: 100 });
    send({ type: "subscribe", id: "dead", stream: "deadletters", last: 100 });
  }

  function onFrame(f) {
    if (!f || typeof f !== "object") return;
    switch (f.type) {
      case "hello":
        state.defaultTz = typeof f.site_tz === "string" ? f.site_tz : "UTC";
        state.zones = f.site_zones && typeof f.site_zones === "object" ? f.site_zones : {};
        applyZone(); subscribeAll(); break;
      case "data": if (Array.isArray(f.records)) onData(f); break;
      case "heartbeat": if (!state.simNow && f.latest && f.latest.raw) state.simNow = Date.parse(f.latest.raw) || 0; schedule(); break;
      case "overflow": console.warn("bridge dropped", f.dropped, "records (slow page); resubscribing"); resubscribe(); break;
      case "error": console.warn("bridge error", f.code, f.detail); break;
      default: break;
    }
  }

  /* The selected site's zone (hello: site_zones overrides, else site_tz) defines its local times and days. */
  function applyZone() {
    const own = Object.prototype.hasOwnProperty.call(state.zones, state.site) ? state.zones[state.site] : null;
    for (const tz of [own, state.defaultTz, "UTC"]) {
      if (typeof tz !== "string") continue;
      try { new Intl.DateTimeFormat("en", { timeZone: tz }); } catch (e) { continue; }  // not a zone
      state.tz = tz;
      Charts.setZone(tz);
      return;
    }
  }

  function resubscribe() {
    for (const id of ["raw", "agg", "late", "dead"]) send({ type: "unsubscribe", id });
    subscribeAll();
  }

  function onData(f) {
    if (f.id === "discover") {
      const first = f.records[0], site = first && first.data && first.data.site;
      if (typeof site === "string" && site && !state.site) { send({ type: "unsubscribe", id: "discover" }); chooseSite(site, false); }
      return;
    }
    const live = f.phase === "live";
    for (const r of f.records) {
      const d = r && r.data;
      if (!d || typeof d !== "object") continue;
      state.records += 1;
      try {
        if (f.stream === "raw") addRaw(d, live);
        else if (f.stream === "aggregates") addAgg(d, r.revision === true);
        else if (f.stream === "late") addRow(state.late, `${d.reading.sensor}|${d.reading.ts}|${d.reading.seq}`, d, Date.parse(d.reading.ts));
        else if (f.stream === "deadletters") addRow(state.dead, `${d.source_topic}|${d.partition}|${d.offset}`, d, Date.parse(d.at));
      } catch (e) { console.warn("skipped a record the page cannot read", e); }
    }
    if (live) state.lastUpdate = new Date();
    schedule();
  }

  function addRaw(d, live) {
    if (typeof d.sensor !== "string" || typeof d.value !== "number") return;
    let series = state.raw.get(d.sensor);
    if (!series) state.raw.set(d.sensor, (series = new Map()));
    const ms = Date.parse(d.ts), key = `${d.ts}|${d.seq}`;
    if (!isFinite(ms)) return;
    series.set(key, [ms, d.value, d.seq]);
    if (series.size > KEEP_PER_SERIES) series.delete(series.keys().next().value);
    if (ms > state.simNow) state.simNow = ms;
    if (live && d.sensor === "HVAC1") state.fresh.add(`HVAC1|${ms}|${d.seq}`);
  }

  function addAgg(d, revised) {
    const name = String(d.name), day = String(d.day);
    let byDay = state.agg.get(name);
    if (!byDay) state.agg.set(name, (byDay = new Map()));
    const old = byDay.get(day);
    if (old && old.revision > d.revision) return;  // keep the highest revision
    byDay.set(day, { ...d, name, day, _rev: revised || d.revision > 1, _ms: Date.parse(d.window_end) || 0 });
    if (byDay.size > KEEP_ROWS) byDay.delete(byDay.keys().next().value);
  }

  function addRow(map, key, d, ms) {
    map.set(key, { d, ms: isFinite(ms) ? ms : 0 });
    if (map.size > KEEP_ROWS) {
      let oldest = null;
      for (const [k, v] of map) if (oldest === null || v.ms < map.get(oldest).ms) oldest = k;
      map.delete(oldest);
    }
  }

  // --- rendering ---------------------------------------------------------------------------------------------------
  let pending = false;
  function schedule() { if (!pending) { pending = true; setTimeout(render, 250); } }

  const sorted = (sensor) => [...(state.raw.get(sensor) || new Map()).values()].sort((a, b) => a[0] - b[0]);
  const chart = (id) => $(id).querySelector(".chart");
  const table = (id) => $(id).querySelector(".table");
  const sensorOf = (name) => (name.match(/\[(.*)\]/) || [])[1];

  function aggDays(names) {
    const days = new Set();
    for (const n of names) for (const day of (state.agg.get(n) || new Map()).keys()) days.add(day);
    return [...days].sort().slice(-DAYS_SHOWN);
  }

  function aggBars(id, names, labels) {
    const days = aggDays(names);
    Charts.bars(chart(id), days, names.map((n, i) => ({ name: labels[i],
      color: n.startsWith("AggDayRest") ? COLORS.rest : COLORS[sensorOf(n)],
      values: days.map((day) => { const a = (state.agg.get(n) || new Map()).get(day); return a && typeof a.value === "number" ? a.value : null; }) })));
  }

  function dailyRaw(id, sensor) {
    const pts = sorted(sensor).slice(-DAYS_SHOWN);
    Charts.bars(chart(id), pts.map((p) => localDay(p[0])), [{ name: sensor, color: COLORS[sensor], values: pts.map((p) => p[1]) }]);
  }

  function aggLine(name) {
    return { name, color: COLORS[sensorOf(name)],
      points: [...(state.agg.get(name) || new Map()).values()].filter((a) => typeof a.value === "number" && a._ms)
        .map((a) => [a._ms, a.value]).sort((a, b) => a[0] - b[0]) };
  }

  function render() {
    pending = false;
    const now = state.simNow;
    $("sim-time").textContent = now ? localTime(now) : "–";
    $("records").textContent = state.records.toLocaleString();
    $("last-update").textContent = state.lastUpdate ? state.lastUpdate.toLocaleTimeString() : "–";
    renderTables();
    if (!now) return;  // the charts follow simulated time: they wait for the first reading
    const first15 = Math.min(...["TH1", "TH2", "MiAC1", "W1"].map((k) => (sorted(k)[0] || [now])[0]));
    const win = [Math.max(now - WINDOW_15MIN, Math.min(first15, now - 36e5)), now];  // grow to 2 days, then slide
    // 2 Daily Etot (raw cumulative)
    dailyRaw("p-etot", "Etot");
    // 3 AggDay[TH1/TH2] (step), over the days shown
    const th = [aggLine("AggDay[TH1]"), aggLine("AggDay[TH2]")];
    const thMs = th.flatMap((s) => s.points.map((p) => p[0]));
    const lastAgg = Math.max(now, ...thMs), firstAgg = Math.min(lastAgg - 2 * DAY, ...thMs);
    Charts.line(chart("p-aggth"), th, [Math.max(lastAgg - DAYS_SHOWN * DAY, firstAgg - DAY / 2), lastAgg + DAY / 2], { step: true });
    // 4 MiAC stacked, 5 TH
    Charts.line(chart("p-miac"), ["MiAC1", "MiAC2"].map((s) => ({ name: s, color: COLORS[s], points: sorted(s) })), win, { stacked: true, step: true });
    Charts.line(chart("p-th"), ["TH1", "TH2"].map((s) => ({ name: s, color: COLORS[s], points: sorted(s) })), win, {});
    // beyond the original
    aggBars("p-aggsum", ["AggDay[HVAC1]", "AggDay[HVAC2]", "AggDay[MiAC1]", "AggDay[MiAC2]"], ["HVAC1", "HVAC2", "MiAC1", "MiAC2"]);
    aggBars("p-eday", ["AggDayDiff[Etot]", "AggDayRest[Etot]"], ["Diff[Etot]", "Rest[Etot]"]);
    aggBars("p-wday", ["AggDayDiff[Wtot]", "AggDayRest[Wtot]", "AggDay[W1]"], ["Diff[Wtot]", "Rest[Wtot]", "AggDay[W1]"]);
    Charts.line(chart("p-w1"), [{ name: "W1", color: COLORS.W1, points: sorted("W1") }], win, { fill: true, zero: true });
    aggBars("p-mov", ["AggDayMov[Mov1]"], ["Mov1 events"]);
    dailyRaw("p-wtot", "Wtot");
  }

  function renderTables() {
    // 1 HVAC1 table (newest first)
    renderTable(table("p-hvac1"), [`time (${state.tz})`, "HVAC1 Wh", "seq"],
      sorted("HVAC1").slice(-60).reverse().map((p) => ({ cls: state.fresh.has(`HVAC1|${p[0]}|${p[2]}`) ? "fresh" : "",
        cells: [localTime(p[0]), { text: num(p[1]), cls: "num" }, { text: p[2], cls: "num" }] })),
      "waiting for data…");
    state.fresh.clear();
    // 6 late rejected events
    renderTable(table("p-late"), ["reading time", "sensor", "value", "day", "late by", "reason"],
      [...state.late.values()].sort((a, b) => b.ms - a.ms).map(({ d }) => ({ cells: [
        localTime(Date.parse(d.reading.ts)), d.reading.sensor, { text: `${num(d.reading.value)} ${d.reading.unit}`, cls: "num" },
        d.day, { text: `${num(d.late_by_ms / 36e5, 1)} h`, cls: "num" }, d.reason] })),
      "no late rejected events yet");
    const aggs = [...state.agg.values()].flatMap((m) => [...m.values()])
      .sort((a, b) => b._ms - a._ms || a.name.localeCompare(b.name)).slice(0, 60);
    renderTable(table("p-aggs"), ["day", "aggregate", "value", "readings", "revision"],
      aggs.map((a) => ({ cells: [a.day, a.name, { text: `${num(a.value)} ${a.unit}`, cls: "num" }, { text: a.count, cls: "num" },
        a._rev ? { text: `rev ${a.revision}`, badge: true } : a.revision] })),
      "no aggregates yet (the first closes after a simulated day)");
    renderTable(table("p-dead"), ["rejected at", "reason", "detail", "source", "payload"],
      [...state.dead.values()].sort((a, b) => b.ms - a.ms).map(({ d, ms }) => ({ cells: [
        ms ? new Date(ms).toISOString().slice(0, 19).replace("T", " ") : "–", d.reason, d.detail,
        `${d.source_topic}[${d.partition}]@${d.offset}`, { text: payload(d), cls: "code" }] })),
      "no dead letters");
  }

  function payload(d) {
    const b64 = String(d.payload_b64);
    try { return atob(b64.slice(0, 4 * CLIP)); } catch (e) { return b64; }  // only what a cell can show
  }

  // --- site selection ---------------------------------------------------------------------------------------------
  function chooseSite(site, resub = true) {
    state.site = site;
    localStorage.setItem("iotpipe-site", site);
    state.raw.clear(); state.agg.clear(); state.late.clear(); state.simNow = 0;
    applyZone();
    const sel = $("site");
    if (![...sel.options].some((o) => o.value === site)) sel.add(new Option(clip(site), site));
    sel.value = site;
    if (resub) resubscribe(); else subscribeAll();
    schedule();
  }

  async function loadSites() {
    try {
      const res = await api("api/v1/sites");
      if (res.status === 401) { askForToken(); return; }
      const sites = res.ok ? (await res.json()).map((s) => s && s.site).filter((s) => typeof s === "string") : [];
      const sel = $("site");
      for (const s of sites) if (![...sel.options].some((o) => o.value === s)) sel.add(new Option(clip(s), s));
      if (!state.site && sites.length) state.site = sites[0];
      if (state.site && ![...sel.options].some((o) => o.value === state.site)) sel.add(new Option(clip(state.site), state.site));
      if (state.site) sel.value = state.site;
    } catch (e) { console.warn("sites", e); }
  }

  $("site").addEventListener("change", (e) => chooseSite(e.target.value));
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    $("auth").hidden = true;
    loadSites().then(connect);
  });
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(Charts.resize, 150); });
  loadSites().then(connect);
  setInterval(loadSites, 30000);  // sites that start reporting later join the list
})();
