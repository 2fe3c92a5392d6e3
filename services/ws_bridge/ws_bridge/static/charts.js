/* The dashboard's charts, drawn by uPlot (a small canvas time-series library, installed at setup time into
   static/vendor/uplot/ by services/ws_bridge/fetch-uplot.sh). One uPlot per panel, created once and then fed with
   setData, so a live update redraws one canvas instead of rebuilding thousands of SVG nodes.
   Every chart has a legend with the values under the cursor, zoom (drag across; double-click to reset: a zoomed
   chart keeps its zoom while live data arrives) and a tooltip. Data never becomes markup: labels are drawn on the
   canvas or set as text. */
"use strict";
const Charts = (() => {
  const HEIGHT = 170, SPARSE = 40, MUTED = "#7d8896", GRID = "#2a323c";
  const plots = new Map();  // container -> {u, key, zoomed, raw, cats}
  let zone = "UTC";

  function fmt(v) {
    if (typeof v !== "number" || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    return +v.toFixed(2) + "";
  }

  let timeFmt = null;
  function timeText(ms) {
    if (!timeFmt || timeFmt.zone !== zone) {
      timeFmt = { zone, f: new Intl.DateTimeFormat("sv-SE", { timeZone: zone, year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }) };
    }
    return timeFmt.f.format(new Date(ms)).replace(",", "");
  }

  function empty(container, text) {
    drop(container);
    const note = document.createElement("div");
    note.className = "empty";
    note.textContent = text || "waiting for data…";
    container.replaceChildren(note);
  }

  function drop(container) {
    const plot = plots.get(container);
    if (plot) { plot.u.destroy(); plots.delete(container); }
  }

  /* The tooltip: the x value and every series' value at the cursor, next to it (text only). */
  function tooltip(plot) {
    let tip = null;
    return {
      hooks: {
        init: (u) => { tip = document.createElement("div"); tip.className = "u-tooltip"; tip.hidden = true; u.over.appendChild(tip); },
        setCursor: (u) => {
          const idx = u.cursor.idx;
          if (idx == null || u.cursor.left < 0) { tip.hidden = true; return; }
          const lines = u.series.map((s, i) => (i === 0 ? "" : `${s.label}  ${s.value(u, u.data[i][idx], i, idx)}`))
            .filter((line, i) => i > 0 && u.series[i].show);
          lines.unshift(u.series[0].value(u, u.data[0][idx], 0, idx));
          tip.textContent = lines.join("\n");
          tip.hidden = false;
          const left = u.cursor.left, right = u.over.clientWidth - left;
          tip.style.left = right < 160 ? "" : `${left + 12}px`;
          tip.style.right = right < 160 ? `${right + 12}px` : "";
          tip.style.top = `${Math.max(0, u.cursor.top - 30)}px`;
        },
      },
    };
  }

  /* x labels: the site's local time, 24 h ("06:00"), and the date ("01-02") at midnight. */
  const timeLabels = (u, splits) => splits.map((ms) => {
    const s = timeText(ms);
    return s.slice(11) === "00:00" ? s.slice(5, 10) : s.slice(11);
  });

  function axes(x) {
    const common = { stroke: MUTED, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, font: "10px system-ui" };
    return [{ ...common, ...x }, { ...common, size: 46, values: (u, vals) => vals.map(fmt) }];
  }

  /* Create the uPlot of a container, or reuse it when the chart's shape (key) is the same. */
  function plotFor(container, key, make) {
    let plot = plots.get(container);
    if (plot && plot.key === key && container.contains(plot.u.root)) return plot;
    drop(container);
    container.replaceChildren();
    plot = { key, zoomed: false, raw: [], cats: [] };
    plot.u = make(plot, { width: Math.max(container.clientWidth, 200), height: HEIGHT,
      plugins: [tooltip(plot), zoomTracking(plot)],
      legend: { live: true }, cursor: { drag: { x: true, y: false, setScale: true } } });
    plots.set(container, plot);
    return plot;
  }

  /* New data, keeping the user's zoom: a drag across the chart zooms in, a double-click resets (uPlot), and until
     then live updates leave the scales alone. */
  function update(plot, data) {
    plot.u.setData(data, !plot.zoomed);
  }

  function zoomTracking(plot) {
    return {
      hooks: {
        init: (u) => u.over.addEventListener("dblclick", () => { plot.zoomed = false; }),
        setSelect: (u) => { if (u.select.width > 0) plot.zoomed = true; },
        // without a cursor on the chart, the legend shows the newest values (after uPlot has updated the cursor)
        draw: (u) => queueMicrotask(() => {
          if (!(u.cursor.left >= 0) && u.data[0].length) u.setLegend({ idx: u.data[0].length - 1 }, false);
        }),
      },
    };
  }

  /* series: [{name, color, points: [[ms, value], ...] sorted}], x: [ms0, ms1]; opts: step, stacked, fill, zero */
  const MISSING = "chart library missing: run `make setup` (services/ws_bridge/fetch-uplot.sh)";

  function line(container, series, x, opts) {
    if (typeof uPlot === "undefined") return empty(container, MISSING);
    opts = opts || {};
    const visible = series.map((s) => s.points.filter((p) => p[0] >= x[0] && p[0] <= x[1]));
    if (!visible.some((pts) => pts.length)) return empty(container);
    const joined = uPlot.join(visible.map((pts) => [pts.map((p) => p[0]), pts.map((p) => p[1])]));
    const raw = joined.slice(1);
    let ys = raw;
    if (opts.stacked) {  // cumulative sums; the legend and tooltip still show each series' own value
      let base = joined[0].map(() => 0);
      ys = raw.map((vals) => (base = base.map((b, i) => b + (vals[i] == null ? 0 : vals[i]))));
    }
    const key = `line|${series.map((s) => s.name).join(",")}|${JSON.stringify(opts)}|${zone}`;
    const plot = plotFor(container, key, (p, base) => new uPlot({
      ...base, ms: 1, tzDate: (ts) => uPlot.tzDate(new Date(ts), zone),
      scales: { x: { time: true }, y: { range: (u, lo, hi) => {
        if (opts.stacked || opts.zero) lo = Math.min(0, lo);
        const pad = (hi - lo) * 0.05 || 1;
        return [opts.stacked || opts.zero ? lo : lo - pad, hi + pad];
      } } },
      axes: axes({ values: timeLabels }),
      series: [{ label: "time", value: (u, v) => (v == null ? "–" : timeText(v)) },
        ...series.map((s, i) => ({
          label: s.name, stroke: s.color, width: 1.6, spanGaps: true,
          fill: opts.fill || (opts.stacked && i === 0) ? `${s.color}40` : undefined,
          paths: opts.step ? uPlot.paths.stepped({ align: 1 }) : undefined,
          points: { show: (u) => u.data[0].length <= SPARSE, size: 5, fill: s.color },
          value: (u, v, si, idx) => (idx == null ? "–" : fmt(p.raw[si - 1][idx])),
        }))],
      bands: opts.stacked ? series.slice(1).map((s, i) => ({ series: [i + 2, i + 1], fill: `${s.color}40` })) : [],
    }, [joined[0], ...ys], container));
    plot.raw = raw;
    update(plot, [joined[0], ...ys]);
  }

  /* Grouped bars, one group per category: the bars of series j sit side by side within their category's band. */
  function groupedBars(j, count) {
    return (u, si, i0, i1) => {
      const path = new Path2D(), xs = u.data[0], vals = u.data[si];
      const band = Math.abs(u.valToPos(1, "x", true) - u.valToPos(0, "x", true));
      const bw = Math.max(Math.min((band * 0.8) / count, 48 * devicePixelRatio), 1);
      const y0 = u.valToPos(0, "y", true);
      for (let i = i0; i <= i1; i++) {
        if (vals[i] == null) continue;
        const left = u.valToPos(xs[i], "x", true) - (bw * count) / 2 + bw * j, y1 = u.valToPos(vals[i], "y", true);
        path.rect(left, Math.min(y0, y1), Math.max(bw - 1, 1), Math.max(Math.abs(y1 - y0), 1));
      }
      return { stroke: path, fill: path };
    };
  }

  /* categories: ["2020-01-01", ...]; series: [{name, color, values: [number|null]}] */
  function bars(container, categories, series) {
    if (typeof uPlot === "undefined") return empty(container, MISSING);
    if (!categories.length || !series.some((s) => s.values.some((v) => v !== null && v !== undefined))) {
      return empty(container);
    }
    const key = `bars|${series.map((s) => s.name).join(",")}`;
    const plot = plotFor(container, key, (p, base) => new uPlot({
      ...base,
      scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.5, hi + 0.5] },
        y: { range: (u, lo, hi) => [Math.min(0, lo), Math.max(0, hi) * 1.08 || 1] } },
      axes: axes({ incrs: [1, 2, 5, 10, 20, 50], values: (u, splits) => splits.map((i) => (p.cats[i] ? p.cats[i].slice(5, 10) : "")) }),
      series: [{ label: "day", value: (u, v) => (v == null ? "–" : p.cats[v] || "–") },
        ...series.map((s, j) => ({ label: s.name, stroke: s.color, fill: s.color, width: 0,
          paths: groupedBars(j, series.length), points: { show: false }, value: (u, v) => fmt(v) }))],
    }, [categories.map((c, i) => i), ...series.map((s) => s.values)], container));
    plot.cats = categories;
    update(plot, [categories.map((c, i) => i), ...series.map((s) => s.values.map((v) => (v === undefined ? null : v)))]);
  }

  function resize() {
    for (const [container, plot] of plots) {
      plot.u.setSize({ width: Math.max(container.clientWidth, 200), height: HEIGHT });
    }
  }

  /* How many x values a container's chart holds (0 when it shows no chart): read by the browser tests. */
  function points(container) {
    const plot = plots.get(container);
    return plot ? plot.u.data[0].length : 0;
  }

  function setZone(tz) { zone = tz; }

  return { line, bars, empty, resize, points, setZone, timeText };
})();
