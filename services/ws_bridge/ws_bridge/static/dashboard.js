/* The built-in live dashboard: one websocket, history first (HBase) then live (Kafka), follows simulated time. */
"use strict";
(() => {
  const COLORS = { TH1: "#ff7a59", TH2: "#4fb3ff", HVAC1: "#f5c542", HVAC2: "#c49bff", MiAC1: "#5ad19a",
    MiAC2: "#2f9e8f", W1: "#5fa8ff", Etot: "#f5c542", Wtot: "#5fa8ff", Mov1: "#ff6fae", rest: "#ff7a59" };
  const DAY = 864e5, WINDOW_15MIN = 2 * DAY, DAYS_SHOWN = 14, KEEP_PER_SERIES = 3000, KEEP_ROWS = 200;
  const params = new URLSearchParams(location.search);
  const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
  if (hashToken) { localStorage.setItem("iotpipe-token", hashToken); history.replaceState(null, "", location.pathname + location.search); }
  const $ = (id) => document.getElementById(id);

  const state = {
    site: params.get("site") || localStorage.getItem("iotpipe-site") || "",
    tz: "UTC", ws: null, records: 0, simNow: 0, lastUpdate: null, backoff: 1000,
    raw: new Map(),      // sensor -> Map(key -> [ms, value, seq])
    agg: new Map(),      // name -> Map(day -> aggregate + {_rev: bool, _ms})
    late: new Map(), dead: new Map(), fresh: new Set(),
  };
  window.iotpipe = state;  // read by the end-to-end browser test

  function token() { return localStorage.getItem("iotpipe-token") || ""; }
  function withToken(url) { const t = token(); return t ? `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(t)}` : url; }

  let fmtCache = null;
  function localTime(ms, withDate = true) {
    if (!fmtCache || fmtCache.tz !== state.tz) {
      fmtCache = { tz: state.tz, f: new Intl.DateTimeFormat("sv-SE", { timeZone: state.tz, year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }) };
    }
    const s = fmtCache.f.format(new Date(ms)).replace(",", "");
    return withDate ? s : s.slice(11);
  }
  const localDay = (ms) => localTime(ms - 1).slice(0, 10);  // a reading at 00:00 closes the previous day

  // --- connection -------------------------------------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(withToken(`${proto}://${location.host}${location.pathname.replace(/[^/]*$/, "")}ws`));
    state.ws = ws;
    ws.onopen = () => { setConn(true, "live"); state.backoff = 1000; };
    ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      setConn(false, ev.code === 1008 ? "token needed" : `closed (${ev.code})`);
      if (ev.code === 1008) { $("auth").hidden = false; return; }
      setTimeout(connect, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 10000);
    };
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
    switch (f.type) {
      case "hello": if (f.site_tz) state.tz = f.site_tz; subscribeAll(); break;
      case "data": onData(f); break;
      case "heartbeat": if (!state.simNow && f.latest.raw) state.simNow = Date.parse(f.latest.raw); schedule(); break;
      case "overflow": console.warn("bridge dropped", f.dropped, "records (slow page); resubscribing"); resubscribe(); break;
      case "error": console.warn("bridge error", f); break;
      default: break;
    }
  }

  function resubscribe() {
    for (const id of ["raw", "agg", "late", "dead"]) send({ type: "unsubscribe", id });
    subscribeAll();
  }

  function onData(f) {
    if (f.id === "discover") {
      const site = f.records[0] && f.records[0].data.site;
      if (site && !state.site) { send({ type: "unsubscribe", id: "discover" }); chooseSite(site, false); }
      return;
    }
    const live = f.phase === "live";
    for (const r of f.records) {
      state.records += 1;
      const d = r.data;
      if (f.stream === "raw") addRaw(d, live);
      else if (f.stream === "aggregates") addAgg(d, r.revision, live);
      else if (f.stream === "late") addRow(state.late, `${d.reading.sensor}|${d.reading.ts}|${d.reading.seq}`, d, Date.parse(d.reading.ts), live);
      else if (f.stream === "deadletters") addRow(state.dead, `${d.source_topic}|${d.partition}|${d.offset}`, d, Date.parse(d.at), live);
    }
    if (live) state.lastUpdate = new Date();
    schedule();
  }

  function addRaw(d, live) {
    let series = state.raw.get(d.sensor);
    if (!series) state.raw.set(d.sensor, (series = new Map()));
    const ms = Date.parse(d.ts), key = `${d.ts}|${d.seq}`;
    series.set(key, [ms, d.value, d.seq]);
    if (series.size > KEEP_PER_SERIES) series.delete(series.keys().next().value);
    if (ms > state.simNow) state.simNow = ms;
    if (live && d.sensor === "HVAC1") state.fresh.add(`HVAC1|${key}`);
  }

  function addAgg(d, revised, live) {
    let byDay = state.agg.get(d.name);
    if (!byDay) state.agg.set(d.name, (byDay = new Map()));
    const old = byDay.get(d.day);
    if (old && old.revision > d.revision) return;  // keep the highest revision
    byDay.set(d.day, { ...d, _rev: revised || d.revision > 1, _ms: Date.parse(d.window_end), _live: live });
  }

  function addRow(map, key, d, ms, live) {
    map.set(key, { d, ms, live });
    if (map.size > KEEP_ROWS) {
      const oldest = [...map.entries()].sort((a, b) => a[1].ms - b[1].ms)[0][0];
      map.delete(oldest);
    }
  }

  // --- rendering --------------------------------------------------------------------------------------------------
  let pending = false;
  function schedule() { if (!pending) { pending = true; setTimeout(render, 250); } }

  const sorted = (sensor) => [...(state.raw.get(sensor) || new Map()).values()].sort((a, b) => a[0] - b[0]);
  const chart = (id) => $(id).querySelector(".chart");
  const table = (id) => $(id).querySelector(".table");
  const num = (v, digits = 2) => (typeof v === "number" ? v.toFixed(digits) : "–");

  function aggDays(names) {
    const days = new Set();
    for (const n of names) for (const day of (state.agg.get(n) || new Map()).keys()) days.add(day);
    return [...days].sort().slice(-DAYS_SHOWN);
  }

  function aggBars(id, names, labels) {
    const days = aggDays(names);
    Charts.bars(chart(id), days, names.map((n, i) => ({ name: labels ? labels[i] : n,
      color: COLORS[n.match(/\[(.*)\]/)[1]] && !n.startsWith("AggDayRest") ? COLORS[n.match(/\[(.*)\]/)[1]] : COLORS.rest,
      values: days.map((day) => { const a = (state.agg.get(n) || new Map()).get(day); return a ? a.value : null; }) })));
  }

  function dailyRaw(id, sensor) {
    const pts = sorted(sensor).slice(-DAYS_SHOWN);
    Charts.bars(chart(id), pts.map((p) => localDay(p[0])), [{ name: sensor, color: COLORS[sensor], values: pts.map((p) => p[1]) }]);
  }

  function render() {
    pending = false;
    const now = state.simNow;
    $("sim-time").textContent = now ? localTime(now) : "–";
    $("records").textContent = state.records.toLocaleString();
    $("last-update").textContent = state.lastUpdate ? state.lastUpdate.toLocaleTimeString() : "–";
    if (!now) return;
    const first15 = Math.min(...["TH1", "TH2", "MiAC1", "W1"].map((k) => (sorted(k)[0] || [now])[0]));
    const win = [Math.max(now - WINDOW_15MIN, Math.min(first15, now - 36e5)), now];  // grow to 2 days, then slide

    // 1 HVAC1 table (newest first)
    const hv = sorted("HVAC1").slice(-60).reverse();
    table("p-hvac1").innerHTML = hv.length ? `<table><tr><th>time (${state.tz})</th><th>HVAC1 Wh</th><th>seq</th></tr>${
      hv.map((p) => `<tr${state.fresh.has(`HVAC1|${new Date(p[0]).toISOString().replace(".000", "")}|${p[2]}`) ? ' class="fresh"' : ""}><td>${localTime(p[0])}</td><td class="num">${num(p[1])}</td><td class="num">${p[2]}</td></tr>`).join("")}</table>`
      : '<div class="empty">waiting for data…</div>';
    state.fresh.clear();
    // 2 Daily Etot (raw cumulative)
    dailyRaw("p-etot", "Etot");
    // 3 AggDay[TH1/TH2] (step), over the days shown
    const aggLine = (n) => ({ name: n, color: COLORS[n.match(/\[(.*)\]/)[1]],
      points: [...(state.agg.get(n) || new Map()).values()].map((a) => [a._ms, a.value]).sort((a, b) => a[0] - b[0]) });
    const th = [aggLine("AggDay[TH1]"), aggLine("AggDay[TH2]")];
    const lastAgg = Math.max(now, ...th.flatMap((s) => s.points.map((p) => p[0])));
    const firstAgg = Math.min(lastAgg - 2 * DAY, ...th.flatMap((s) => s.points.map((p) => p[0])));
    Charts.line(chart("p-aggth"), th, [Math.max(lastAgg - DAYS_SHOWN * DAY, firstAgg - DAY / 2), lastAgg + DAY / 2], { step: true });
    // 4 MiAC stacked, 5 TH
    Charts.line(chart("p-miac"), ["MiAC1", "MiAC2"].map((s) => ({ name: s, color: COLORS[s], points: sorted(s) })), win, { stacked: true, step: true });
    Charts.line(chart("p-th"), ["TH1", "TH2"].map((s) => ({ name: s, color: COLORS[s], points: sorted(s) })), win, {});
    // 6 late rejected events
    const late = [...state.late.values()].sort((a, b) => b.ms - a.ms);
    table("p-late").innerHTML = late.length ? `<table><tr><th>reading time</th><th>sensor</th><th>value</th><th>day</th><th>late by</th><th>reason</th></tr>${
      late.map(({ d }) => `<tr><td>${localTime(Date.parse(d.reading.ts))}</td><td>${d.reading.sensor}</td><td class="num">${num(d.reading.value)} ${d.reading.unit}</td><td>${d.day}</td><td class="num">${(d.late_by_ms / 36e5).toFixed(1)} h</td><td>${d.reason}</td></tr>`).join("")}</table>`
      : '<div class="empty">no late rejected events yet</div>';
    // beyond the original
    aggBars("p-aggsum", ["AggDay[HVAC1]", "AggDay[HVAC2]", "AggDay[MiAC1]", "AggDay[MiAC2]"], ["HVAC1", "HVAC2", "MiAC1", "MiAC2"]);
    aggBars("p-eday", ["AggDayDiff[Etot]", "AggDayRest[Etot]"], ["Diff[Etot]", "Rest[Etot]"]);
    aggBars("p-wday", ["AggDayDiff[Wtot]", "AggDayRest[Wtot]", "AggDay[W1]"], ["Diff[Wtot]", "Rest[Wtot]", "AggDay[W1]"]);
    Charts.line(chart("p-w1"), [{ name: "W1", color: COLORS.W1, points: sorted("W1") }], win, { fill: true, zero: true });
    aggBars("p-mov", ["AggDayMov[Mov1]"], ["Mov1 events"]);
    dailyRaw("p-wtot", "Wtot");
    const aggs = [...state.agg.values()].flatMap((m) => [...m.values()]).sort((a, b) => b._ms - a._ms || a.name.localeCompare(b.name)).slice(0, 60);
    table("p-aggs").innerHTML = aggs.length ? `<table><tr><th>day</th><th>aggregate</th><th>value</th><th>readings</th><th>revision</th></tr>${
      aggs.map((a) => `<tr><td>${a.day}</td><td>${a.name}</td><td class="num">${num(a.value)} ${a.unit}</td><td class="num">${a.count}</td><td>${a._rev ? `<span class="badge">rev ${a.revision}</span>` : a.revision}</td></tr>`).join("")}</table>`
      : '<div class="empty">no aggregates yet (the first closes after a simulated day)</div>';
    const dead = [...state.dead.values()].sort((a, b) => b.ms - a.ms);
    table("p-dead").innerHTML = dead.length ? `<table><tr><th>rejected at</th><th>reason</th><th>detail</th><th>source</th><th>payload</th></tr>${
      dead.map(({ d }) => `<tr><td>${new Date(Date.parse(d.at)).toISOString().slice(0, 19).replace("T", " ")}</td><td>${d.reason}</td><td>${esc(d.detail).slice(0, 80)}</td><td>${d.source_topic}[${d.partition}]@${d.offset}</td><td><code>${esc(payload(d)).slice(0, 60)}</code></td></tr>`).join("")}</table>`
      : '<div class="empty">no dead letters</div>';
  }

  function payload(d) { try { return atob(d.payload_b64); } catch (e) { return d.payload_b64; } }
  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

  // --- site selection ---------------------------------------------------------------------------------------------
  function chooseSite(site, resub = true) {
    state.site = site;
    localStorage.setItem("iotpipe-site", site);
    state.raw.clear(); state.agg.clear(); state.late.clear(); state.simNow = 0;
    const sel = $("site");
    if (![...sel.options].some((o) => o.value === site)) sel.add(new Option(site, site));
    sel.value = site;
    if (resub) resubscribe(); else subscribeAll();
    schedule();
  }

  async function loadSites() {
    try {
      const res = await fetch(withToken("api/v1/sites"));
      if (res.status === 401) { $("auth").hidden = false; return; }
      const sites = res.ok ? (await res.json()).map((s) => s.site) : [];
      const sel = $("site");
      for (const s of sites) if (![...sel.options].some((o) => o.value === s)) sel.add(new Option(s, s));
      if (!state.site && sites.length) state.site = sites[0];
      if (state.site) sel.value = state.site;
    } catch (e) { console.warn("sites", e); }
  }

  $("site").addEventListener("change", (e) => chooseSite(e.target.value));
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault(); localStorage.setItem("iotpipe-token", $("token").value); $("auth").hidden = true;
    loadSites().then(connect);
  });
  window.addEventListener("resize", schedule);
  loadSites().then(connect);
  setInterval(loadSites, 30000);  // sites that start reporting later join the list
})();
