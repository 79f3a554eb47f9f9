// oiradar dashboard: a live, sortable, filterable table over server-sent events, a symbol
// view with a four-panel chart and its event history, and the alert feed. No framework, no
// build step; every value goes into the page as text, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
// Opens on every regime, most telling first (squeezes, covering, long liquidation, ...):
// the rows that matter lead, and the table is never empty just because of a filter.
const state = {
  table: null,
  sortKey: "regime",
  sortAsc: false,
  lastRegime: new Map(),
  source: null,
  watch: null,
};
const RANK = ["SHORT_SQUEEZE", "SHORT_COVERING", "LONG_LIQUIDATION", "NEW_SHORTS", "NEW_LONGS",
  "LOW_CONVICTION_RALLY", "LOW_CONVICTION_SELLOFF", "NEUTRAL", "NONE", "NO_DATA"];

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function money(x) {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  const sign = x < 0 ? "-" : "";
  for (const [d, s] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= d) return `${sign}$${(a / d).toFixed(a / d >= 100 ? 0 : 1)}${s}`;
  }
  return `${sign}$${a.toFixed(0)}`;
}
function pct(x, digits = 2) {
  return x === null || x === undefined ? "–" : `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;
}
function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
function signed(x) {
  return x === null || x === undefined ? "" : x > 0 ? "up" : x < 0 ? "down" : "";
}
function regimeBadge(regime) {
  return el("span", { class: `badge r-${regime}` }, regime.replaceAll("_", " ").toLowerCase());
}
function timeOf(iso) {
  return iso ? iso.slice(0, 16).replace("T", " ") : "–";
}

// -- the board ------------------------------------------------------------------------------

function visibleRows() {
  if (!state.table) return [];
  const scope = $("#scope").value;
  const want = $("#regime").value;
  const text = $("#filter").value.trim().toUpperCase();
  let rows = state.table[scope] || [];
  rows = rows.filter((r) => {
    if (text && !r.symbol.includes(text)) return false;
    if (want === "covering") return r.regime === "SHORT_COVERING" || r.regime === "SHORT_SQUEEZE";
    return !want || r.regime === want;
  });
  if (state.sortKey) {
    const k = state.sortKey;
    const dir = state.sortAsc ? 1 : -1;
    rows = [...rows].sort((a, b) => {
      let x = a[k], y = b[k];
      if (k === "regime") { x = RANK.indexOf(x); y = RANK.indexOf(y); return (x - y) * -dir; }
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x > y ? 1 : x < y ? -1 : 0) * dir;
    });
  }
  return rows;
}

function renderTable() {
  const body = $("#markets tbody");
  const rows = visibleRows();
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const key = `${r.venue}:${r.symbol}`;
    const before = state.lastRegime.get(key);
    const tr = el("tr", { dataset: { symbol: r.symbol, venue: r.venue, regime: r.regime } },
      el("td", {}, el("strong", {}, r.symbol)),
      el("td", { class: "muted" }, r.venue === "all" ? `${r.driver} (${r.venues})` : r.venue),
      el("td", {}, regimeBadge(r.regime)),
      el("td", { class: `num ${signed(r.oi_change_pct)}` }, pct(r.oi_change_pct)),
      el("td", { class: `num ${signed(r.price_change_pct)}` }, pct(r.price_change_pct)),
      el("td", { class: "muted" }, r.horizon ?? "–"),
      el("td", { class: "num" }, money(r.oi_usd)),
      el("td", { class: `num ${signed(r.oi_change_usd)}` }, money(r.oi_change_usd)),
      el("td", { class: `num ${signed(r.funding_rate_8h)}` },
        r.funding_rate_8h === null || r.funding_rate_8h === undefined ? "–" : `${(r.funding_rate_8h * 100).toFixed(4)}%`),
      el("td", { class: "num" }, money(r.short_liq_usd)),
      el("td", { class: "num" }, money(r.long_liq_usd)),
      el("td", { class: "num" }, r.confidence ?? "–"),
      el("td", { class: "muted" }, timeOf(r.ts)),
    );
    if (before !== undefined && before !== r.regime) tr.classList.add("flash");
    state.lastRegime.set(key, r.regime);
    tr.addEventListener("click", () => { location.hash = `#/s/${r.symbol}`; });
    frag.append(tr);
  }
  body.replaceChildren(frag);
  showEmpty(rows.length);
  for (const th of document.querySelectorAll("#markets th")) {
    th.classList.toggle("sorted", th.dataset.key === state.sortKey);
    th.classList.toggle("asc", th.dataset.key === state.sortKey && state.sortAsc);
  }
}

// Why the table is empty: the filters, or no data yet (and whether a watch is running).
function showEmpty(shown) {
  const empty = $("#empty");
  empty.hidden = shown > 0;
  if (shown > 0) return;
  const all = state.table ? (state.table[$("#scope").value] || []).length : 0;
  const text = $("#filter").value.trim();
  if (all > 0 && text) {
    empty.replaceChildren(`No market matches “${text}”${$("#regime").value ? " in this regime" : ""}.`);
  } else if (all > 0) {
    empty.replaceChildren("No market in this regime right now.");
  } else if (state.watch === "running") {
    empty.replaceChildren(el("code", {}, "oiradar watch"), " is running; the first bars will show here as they close.");
  } else {
    empty.replaceChildren("No market yet. Is ", el("code", {}, "oiradar watch"), " writing this store?");
  }
}

function connect() {
  if (state.source) state.source.close();
  const src = new EventSource(`/api/stream?window=${encodeURIComponent($("#window").value)}`);
  src.addEventListener("table", (e) => {
    state.table = JSON.parse(e.data);
    $("#updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    renderTable();
  });
  src.addEventListener("alert", (e) => addAlert(JSON.parse(e.data), true));
  src.onerror = () => { $("#updated").textContent = "reconnecting…"; };
  state.source = src;
}

// -- alerts ---------------------------------------------------------------------------------

function addAlert(a, fresh) {
  const li = el("li", { class: fresh ? "new-alert" : "" },
    el("div", { class: "head" }, regimeBadge(a.regime), el("strong", {}, a.symbol),
      el("span", { class: "muted" }, a.kind), el("span", { class: "when" }, timeOf(a.ts))),
    el("div", { class: "text" }, a.sentence || ""));
  li.addEventListener("click", () => { location.hash = `#/s/${a.symbol}`; });
  const list = $("#alerts");
  if (fresh) list.prepend(li); else list.append(li);
  while (list.children.length > 100) list.lastChild.remove();
  $("#no-alerts").hidden = true;
}

async function loadAlerts() {
  const r = await fetch("/api/alerts?limit=50");
  if (!r.ok) return;
  const { alerts } = await r.json();
  $("#alerts").replaceChildren();
  alerts.forEach((a) => addAlert(a, false));
  $("#no-alerts").hidden = alerts.length > 0;
}

async function loadStatus() {
  const pill = $("#watch");
  try {
    const s = await (await fetch("/api/status")).json();
    if (s.state !== state.watch && state.table) { state.watch = s.state; renderTable(); }
    state.watch = s.state;
    const live = (s.venues || []).filter((v) => v.stream === "live").map((v) => v.venue);
    pill.textContent = s.state === "running" ? `watch: ${live.join(", ") || "starting"}` : `watch: ${s.state}`;
    pill.className = `pill ${s.state === "running" ? "live" : "down"}`;
  } catch (_) {
    pill.textContent = "watch: ?";
  }
}

// -- the symbol view ------------------------------------------------------------------------

function seriesAt(ts, values) {
  return { x: ts.map((t) => new Date(t)), y: values };
}

async function showSymbol(symbol) {
  $("#board-view").hidden = true;
  $("#symbol-view").hidden = false;
  $("#symbol-title").textContent = symbol;
  $("#symbol-sub").textContent = "loading…";
  const win = encodeURIComponent($("#window").value);
  const res = await fetch(`/api/symbols/${encodeURIComponent(symbol)}/chart?window=${win}`);
  const data = await res.json();
  if (!res.ok) {
    $("#symbol-sub").textContent = data.error || "no data";
    Plotly.purge("chart");
    return;
  }
  $("#symbol-sub").textContent =
    `${data.interval} bars · ${data.window} · price from ${data.price_venue} · OI from ${data.venues.join(", ")}`;
  drawChart(data);
  loadEvents(symbol, data.price_venue);
}

function drawChart(d) {
  const x = d.ts.map((t) => new Date(t + 0));
  const traces = [{
    type: "candlestick", x, open: d.open, high: d.high, low: d.low, close: d.close,
    name: `${d.symbol} price`, xaxis: "x", yaxis: "y", showlegend: false,
    increasing: { line: { color: "#3fb950" } }, decreasing: { line: { color: "#f85149" } },
  }];
  const colors = { binance: "#f0b90b", bybit: "#e6a23c", okx: "#58a6ff", bitget: "#1abc9c",
    gate: "#c678dd", hyperliquid: "#7ee787", dydx: "#a371f7" };
  // OI as % since the chart's first bar: venues of very different size become comparable and
  // a 2 % drop is visible; the hover shows the USD value.
  const indexed = (values) => {
    const base = values.find((v) => v !== null);
    return values.map((v) => (v === null || !base ? null : (v / base - 1) * 100));
  };
  const oiLines = d.oi.length > 1 ? [...d.oi, { venue: "all venues", oi_usd: d.oi_total_usd }] : d.oi;
  for (const v of oiLines) {
    const total = v.venue === "all venues";
    traces.push({ ...seriesAt(d.ts, indexed(v.oi_usd)), type: "scatter", mode: "lines",
      name: `OI ${v.venue}`, customdata: v.oi_usd.map((u) => money(u)),
      hovertemplate: `OI ${v.venue}: %{y:+.2f}% (%{customdata})<extra></extra>`,
      line: { width: total ? 2.6 : 1.3, color: total ? "#d7dde4" : colors[v.venue] }, yaxis: "y2", xaxis: "x" });
  }
  for (const v of d.oi) {
    traces.push({ ...seriesAt(d.ts, v.funding_8h_pct), type: "scatter", mode: "lines",
      name: `funding ${v.venue}`, line: { width: 1.2, color: colors[v.venue], shape: "hv" },
      yaxis: "y3", xaxis: "x", showlegend: false,
      hovertemplate: `funding ${v.venue}: %{y:.4f}%/8h<extra></extra>` });
  }
  traces.push({ ...seriesAt(d.ts, d.liq_short_usd), type: "bar", name: "shorts liquidated",
    marker: { color: "#d2a8ff" }, yaxis: "y4", xaxis: "x" });
  traces.push({ ...seriesAt(d.ts, d.liq_long_usd.map((v) => (v === null ? null : -v))), type: "bar",
    name: "longs liquidated", marker: { color: "#f0883e" }, yaxis: "y4", xaxis: "x" });
  traces.push({
    x: d.events.map((e) => new Date(e.signal_ms)), y: d.events.map((e) => e.y), yaxis: "y", xaxis: "x",
    type: "scatter", mode: "markers", name: "events", text: d.events.map((e) => e.label),
    hoverinfo: "text+x", marker: { symbol: "triangle-down", size: 12, color: "#d2a8ff",
      line: { color: "#0f1216", width: 1 } },
  });
  const shapes = d.regimes.map(([a, b, regime]) => ({
    type: "rect", xref: "x", yref: "paper", x0: new Date(a), x1: new Date(b), y0: 0, y1: 1,
    fillcolor: regime === "SHORT_SQUEEZE" ? "rgba(210,168,255,0.22)" : "rgba(46,160,67,0.16)",
    line: { width: 0 }, layer: "below",
  }));
  const axis = { gridcolor: "#262d36", zerolinecolor: "#39424e" };
  const layout = {
    paper_bgcolor: "#161b22", plot_bgcolor: "#161b22", font: { color: "#d7dde4", size: 12 },
    margin: { l: 70, r: 20, t: 30, b: 40 }, shapes, barmode: "relative", hovermode: "x unified",
    legend: { orientation: "h", y: 1.06, x: 0 },
    xaxis: { ...axis, rangeslider: { visible: false }, type: "date", anchor: "y4",
      title: { text: "time (UTC)" } },
    yaxis: { ...axis, domain: [0.52, 1], title: { text: `price (${d.price_venue})` } },
    yaxis2: { ...axis, domain: [0.3, 0.5], title: { text: "OI, % since start" }, ticksuffix: "%" },
    // No fixed tick format: a calm market's rates (0.0005 %) repeated labels at three decimals.
    yaxis3: { ...axis, domain: [0.17, 0.28], title: { text: "funding %/8h" }, nticks: 4 },
    yaxis4: { ...axis, domain: [0, 0.15], title: { text: "liquidations" }, tickformat: "$.2s" },
  };
  Plotly.react("chart", traces, layout, { responsive: true, displaylogo: false });
}

async function loadEvents(symbol, venue) {
  const win = encodeURIComponent($("#window").value);
  const res = await fetch(`/api/symbols/${encodeURIComponent(symbol)}/events?venue=${venue}&days=365&window=${win}`);
  const body = $("#events tbody");
  body.replaceChildren();
  if (!res.ok) { $("#no-events").hidden = false; return; }
  const data = await res.json();
  const s = data.summary;
  const known = s && s.hit_pct !== null && s.hit_pct !== undefined;
  $("#events-summary").textContent = !s ? "" : known
    ? `· ${count(s.events, "event")} on ${data.venue}, hit rate ${s.hit_pct.toFixed(0)} %, mean +1h ${pct(s.mean_1h)} % [${pct(s.mean_ci[0])}, ${pct(s.mean_ci[1])}] vs control ${pct(s.control_mean)} %`
    : `· ${count(s.events, "event")} on ${data.venue}; outcomes not known yet`;
  for (const e of data.events) {
    body.append(el("tr", {},
      el("td", {}, timeOf(e.signal_at)), el("td", {}, regimeBadge(e.regime)), el("td", {}, e.tier),
      el("td", { class: "num" }, e.entry_price.toPrecision(6)),
      el("td", { class: `num ${signed(e.oi_change_pct)}` }, pct(e.oi_change_pct)),
      el("td", { class: `num ${signed(e.price_change_pct)}` }, pct(e.price_change_pct)),
      el("td", { class: "muted" }, e.horizon ?? "–"),
      ...["ret_15m_pct", "ret_1h_pct", "ret_4h_pct", "ret_1d_pct", "mfe_pct", "mae_pct"].map((k) =>
        el("td", { class: `num ${signed(e[k])}` }, pct(e[k])))));
  }
  $("#no-events").hidden = data.events.length > 0;
}

// -- routing --------------------------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/s\/([A-Za-z0-9]+)$/);
  if (m) { showSymbol(m[1].toUpperCase()); return; }
  $("#symbol-view").hidden = true;
  $("#board-view").hidden = false;
  renderTable();
}

function init() {
  for (const th of document.querySelectorAll("#markets th")) {
    th.addEventListener("click", () => {
      const k = th.dataset.key;
      state.sortAsc = state.sortKey === k ? !state.sortAsc : false;
      state.sortKey = k;
      renderTable();
    });
  }
  $("#filter").addEventListener("input", renderTable);
  // The regime filter lives in the address (?regime=...): a reload or a shared link keeps it.
  const asked = new URLSearchParams(location.search).get("regime");
  if (asked && [...$("#regime").options].some((o) => o.value === asked)) $("#regime").value = asked;
  $("#regime").addEventListener("change", () => {
    const url = new URL(location.href);
    if ($("#regime").value) url.searchParams.set("regime", $("#regime").value);
    else url.searchParams.delete("regime");
    history.replaceState(null, "", url);
    renderTable();
  });
  $("#scope").addEventListener("change", renderTable);
  $("#window").addEventListener("change", () => { connect(); if (location.hash.startsWith("#/s/")) route(); });
  window.addEventListener("hashchange", route);
  connect();
  loadAlerts();
  loadStatus();
  setInterval(loadStatus, 5000);
  route();
}

init();
