/* Tiny hand-written SVG charts for the built-in dashboard: line/step/stacked-area over time, and grouped bars. */
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { l: 52, r: 8, t: 20, b: 20 };

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceTicks(lo, hi, count) {
    if (!isFinite(lo) || !isFinite(hi)) return [0, 1];
    if (lo === hi) { lo -= 1; hi += 1; }
    const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
    if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    return +v.toFixed(2) + "";
  }

  function frame(container) {
    container.textContent = "";
    const w = container.clientWidth || 400, h = container.clientHeight || 200;
    const svg = el("svg", { viewBox: `0 0 ${w} ${h}` }, container);
    return { svg, w, h, iw: w - PAD.l - PAD.r, ih: h - PAD.t - PAD.b };
  }

  function yAxis(f, lo, hi) {
    const ticks = niceTicks(lo, hi, 4);
    const y0 = ticks[0], y1 = ticks[ticks.length - 1];
    const y = (v) => PAD.t + f.ih - ((v - y0) / (y1 - y0 || 1)) * f.ih;
    for (const t of ticks) {
      el("line", { class: "grid", x1: PAD.l, x2: PAD.l + f.iw, y1: y(t), y2: y(t) }, f.svg);
      el("text", { x: PAD.l - 4, y: y(t) + 3, "text-anchor": "end" }, f.svg).textContent = fmt(t);
    }
    return y;
  }

  function legend(f, series) {
    const g = el("g", { class: "legend" }, f.svg);
    let x = PAD.l;
    for (const s of series) {
      el("rect", { x, y: 5, width: 9, height: 9, fill: s.color, rx: 2 }, g);
      const last = s.last !== undefined ? `  ${fmt(s.last)}` : "";
      const t = el("text", { x: x + 12, y: 13 }, g);
      t.textContent = s.name + last;
      x += 12 + (s.name.length + last.length) * 6.2 + 14;
    }
  }

  function empty(container, text) {
    container.innerHTML = `<div class="empty">${text || "waiting for data…"}</div>`;
  }

  /* series: [{name, color, points: [[ms, value], ...] sorted}], x: [ms0, ms1]; opts: step, stacked, fill */
  function line(container, series, x, opts) {
    opts = opts || {};
    const visible = series.map((s) => ({ ...s, points: s.points.filter((p) => p[0] >= x[0] && p[0] <= x[1]) }));
    if (!visible.some((s) => s.points.length)) return empty(container);
    const f = frame(container);
    let stacked = visible;
    if (opts.stacked) {  // cumulative sums at each series' own timestamps (15-min series share timestamps)
      const base = new Map();
      stacked = visible.map((s) => ({ ...s, points: s.points.map(([t, v]) => {
        const b = base.get(t) || 0; base.set(t, b + v); return [t, b + v, b];
      }) }));
    }
    const all = stacked.flatMap((s) => s.points.map((p) => p[1]));
    const lo = opts.stacked || opts.zero ? Math.min(0, ...all) : Math.min(...all);
    const y = yAxis(f, lo, Math.max(...all));
    const xs = (t) => PAD.l + ((t - x[0]) / (x[1] - x[0] || 1)) * f.iw;
    const span = x[1] - x[0];
    const tickEvery = span > 4 * 864e5 ? 864e5 : span > 864e5 ? 6 * 36e5 : 36e5 * 2;
    for (let t = Math.ceil(x[0] / tickEvery) * tickEvery; t <= x[1]; t += tickEvery) {
      const d = new Date(t), label = tickEvery >= 864e5 || d.getUTCHours() === 0
        ? d.toISOString().slice(5, 10) : d.toISOString().slice(11, 16);
      el("text", { x: xs(t), y: f.h - 5, "text-anchor": "middle" }, f.svg).textContent = label;
    }
    const trace = (pts, idx, move) => pts.map((p, i) => {
      const px = xs(p[0]), py = y(p[idx]);
      if (i === 0) return `${move ? "M" : "L"}${px},${py}`;
      if (!opts.step) return `L${px},${py}`;
      return move ? `H${px}V${py}` : `V${py}H${px}`;  // walking back along a step line: vertical first
    }).join("");
    for (const s of [...stacked].reverse()) {
      if (!s.points.length) continue;
      const top = trace(s.points, 1, true);
      if (opts.fill || opts.stacked) {
        const floor = Math.max(lo, 0);
        const back = opts.stacked
          ? trace(s.points.map((p) => [p[0], p[2]]).reverse(), 1, false)
          : `L${xs(s.points[s.points.length - 1][0])},${y(floor)}L${xs(s.points[0][0])},${y(floor)}`;
        el("path", { d: top + back + "Z", fill: s.color, "fill-opacity": 0.25, stroke: "none" }, f.svg);
      }
      el("path", { d: top, fill: "none", stroke: s.color, "stroke-width": 1.6 }, f.svg);
      if (s.points.length <= 40) {  // sparse series (daily values): mark each point
        for (const p of s.points) el("circle", { cx: xs(p[0]), cy: y(p[1]), r: 2.5, fill: s.color }, f.svg);
      }
    }
    legend(f, visible.map((s) => ({ ...s, last: s.points.length ? s.points[s.points.length - 1][1] : undefined })));
  }

  /* categories: ["2020-01-01", ...]; series: [{name, color, values: [number|null]}] (grouped bars) */
  function bars(container, categories, series) {
    if (!categories.length || !series.some((s) => s.values.some((v) => v !== null && v !== undefined))) {
      return empty(container);
    }
    const f = frame(container);
    const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
    const y = yAxis(f, Math.min(0, ...all), Math.max(0, ...all));
    const band = f.iw / categories.length, bw = Math.min((band * 0.8) / series.length, 48);
    const gap = band - bw * series.length;
    const labelEvery = Math.ceil(categories.length / Math.max(1, Math.floor(f.iw / 44)));
    categories.forEach((c, i) => {
      if (i % labelEvery === 0) {
        el("text", { x: PAD.l + band * i + band / 2, y: f.h - 5, "text-anchor": "middle" }, f.svg).textContent =
          c.slice(5);
      }
      series.forEach((s, j) => {
        const v = s.values[i];
        if (v === null || v === undefined) return;
        const y0 = y(0), y1 = y(v);
        const r = el("rect", { x: PAD.l + band * i + gap / 2 + bw * j, y: Math.min(y0, y1), width: Math.max(bw - 1, 1),
          height: Math.max(Math.abs(y1 - y0), 1), fill: s.color, rx: 1 }, f.svg);
        el("title", {}, r).textContent = `${s.name} ${c}: ${v}`;
      });
    });
    legend(f, series.map((s) => ({ ...s, last: [...s.values].reverse().find((v) => v !== null && v !== undefined) })));
  }

  return { line, bars, empty };
})();
