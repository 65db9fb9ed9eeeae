// FusionBench leaderboard page: loads leaderboard.json and renders one sortable table per
// benchmark, plus a normalised-score-vs-number-of-tasks plot for subset sweeps.
// Every piece of data reaches the page through textContent or setAttribute, never as HTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#2458c6", "#d1495b", "#2e933c", "#e59500", "#7b3fa0", "#00838f", "#8d6e63", "#c2185b", "#546e7a", "#9e9d24"];
const PROTOCOLS = { single_run: "single run", subset_sweep: "sweep" };
let sectionCount = 0;

function node(tag, attrs = {}, text = null) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== null) el.textContent = String(text);
  return el;
}

function svgNode(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== null) el.textContent = String(text);
  return el;
}

function isNumber(v) {
  return typeof v === "number" && Number.isFinite(v);
}

function fmt(v, digits = 3) {
  return isNumber(v) ? v.toFixed(digits) : "–";
}

function benchmarkKey(b) {
  return JSON.stringify([b.checkpoint_family, b.family, b.mode, b.modelpool, b.taskpool, b.split, b.limit, b.protocol,
    b.subsets ?? null, b.selection_split ?? null, [...b.tasks].sort()]);
}

function benchmarkTitle(b) {
  const protocol = b.protocol === "subset_sweep" ? `sweep over ${b.subsets === "all" ? "all subsets" : b.subsets}` : PROTOCOLS[b.protocol] || b.protocol;
  return `${b.family} (${b.checkpoint_family} checkpoints), ${b.mode} fine-tuning, task pool ${b.taskpool}: ${protocol}`;
}

function benchmarkDetails(b) {
  if (b.protocol === "published") return `published numbers only (no measured entry yet); ${b.tasks.length} tasks (${b.tasks.join(", ")}); hover a row for its source`;
  const parts = [`model pool ${b.modelpool}`, `${b.tasks.length} tasks (${b.tasks.join(", ")})`, `reported on ${b.split}`];
  if (b.protocol === "subset_sweep") parts.push(`hyper-parameters selected per subset on ${b.selection_split}`);
  parts.push(b.limit === null ? "every example" : `at most ${b.limit} examples per task`);
  return parts.join("; ");
}

function paramText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function parametersText(method) {
  const parts = Object.entries(method.parameters).map(([k, v]) => `${k}=${paramText(v)}`);
  for (const [k, values] of Object.entries(method.grid || {})) parts.push(`${k}∈{${values.map(paramText).join(", ")}}`);
  return parts.join(", ") || "–";
}

function provenanceText(entry) {
  const p = entry.provenance;
  const packages = Object.entries(p.packages).map(([k, v]) => `${k} ${v}`).join(", ");
  const cost = Object.entries(entry.cost).map(([k, v]) => `${k} ${isNumber(v) && !Number.isInteger(v) ? v.toFixed(2) : v}`).join(", ");
  return [entry.method.reference, `date ${p.date}`, `device ${p.device}`, `git ${p.git_revision ?? "unknown"}`,
    `seed ${p.seed}`, `config ${p.config_hash.slice(0, 12)}`, `from ${p.source}`, packages, `cost: ${cost}`].filter(Boolean).join("\n");
}

function scoreTitle(row) {
  const normStderr = isNumber(row.finetuned) && row.finetuned !== 0 ? ` ± ${fmt(row.stderr / row.finetuned, 4)} (stderr / fine-tuned)` : "";
  return [`${row.metric} ${fmt(row.score, 4)} ± ${fmt(row.stderr, 4)} (stderr, n=${row.n})`,
    `normalised ${fmt(row.normalized, 4)}${normStderr}`,
    `fine-tuned ${fmt(row.finetuned, 4)}, pretrained ${fmt(row.pretrained, 4)}`].join("\n");
}

// Columns of one benchmark's table. value(entry, view) is the sort key (number or string; null sorts last).
function columns(benchmark) {
  const cols = [
    { label: "method", text: true, value: (e) => e.method.name, cell: (e) => ({ text: e.method.name, title: provenanceText(e) }) },
    { label: "version", text: true, value: (e) => e.method.version, cell: (e) => ({ text: e.method.version }) },
    { label: "parameters", text: true, cls: "params", value: (e) => parametersText(e.method), cell: (e) => ({ text: parametersText(e.method) }) },
  ];
  if (benchmark.protocol === "subset_sweep") {
    cols.push({
      label: "all subsets", headline: true, hint: "normalised score: mean ± std over subsets of each subset's mean (L-LoRA paper, Table 1)",
      value: (e) => e.sweep.table1?.mean ?? null,
      cell: (e) => ({ text: e.sweep.table1 ? `${fmt(e.sweep.table1.mean)} ± ${fmt(e.sweep.table1.std)}` : "–", title: e.sweep.table1 ? `${e.sweep.table1.n} subsets` : null }),
    });
  }
  cols.push({
    label: "average", headline: benchmark.protocol !== "subset_sweep", hint: "mean over the tasks of the merged model of all tasks",
    value: (e, view) => e.average[view],
    cell: (e, view) => ({ text: fmt(e.average[view]), title: `score ${fmt(e.average.score, 4)}, normalised ${fmt(e.average.normalized, 4)}` }),
  });
  for (const task of benchmark.tasks) {
    cols.push({
      label: task,
      value: (e, view) => (e.tasks[task] ? e.tasks[task][view] : null),
      cell: (e, view) => (e.tasks[task] ? { text: fmt(e.tasks[task][view]), title: scoreTitle(e.tasks[task]) } : { text: "–" }),
    });
  }
  return cols;
}

function compare(a, b, dir) {
  const missingA = a === null || a === undefined || (typeof a === "number" && !Number.isFinite(a));
  const missingB = b === null || b === undefined || (typeof b === "number" && !Number.isFinite(b));
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1;
  const order = typeof a === "string" ? a.localeCompare(b) : a - b;
  return dir === "ascending" ? order : -order;
}

// Published numbers (board.published) of a benchmark: same backbone, checkpoint family, mode and task pool.
function publishedFor(board, b) {
  return (board.published || []).filter((p) => p.family === b.family && p.checkpoint_family === b.checkpoint_family && p.mode === b.mode && p.taskpool === b.taskpool);
}

// One published row's value in a view: published percent -> fraction; normalised by the set's individual fine-tuned row.
function publishedValue(row, finetuned, task, view) {
  const mean = (values) => (values.every(isNumber) && values.length ? values.reduce((a, v) => a + v, 0) / values.length : null);
  const raw = (r) => (task === null ? (isNumber(r.average) ? r.average : mean(Object.values(r.tasks))) : r.tasks[task]);
  const score = raw(row);
  if (!isNumber(score)) return null;
  if (view === "score") return score / 100;
  if (!finetuned) return null;
  if (task === null) return isNumber(row.average) ? (isNumber(raw(finetuned)) ? score / raw(finetuned) : null) : mean(Object.keys(row.tasks).map((t) => row.tasks[t] / finetuned.tasks[t]));
  return isNumber(finetuned.tasks[task]) ? score / finetuned.tasks[task] : null;
}

function publishedRows(benchmark, published, view, ncols) {
  const rows = [];
  for (const set of published) {
    const finetuned = set.rows.find((r) => r.method === "finetuned");
    for (const row of set.rows) {
      const tr = node("tr", { class: "published" });
      const cells = [[`published: ${row.label}`, row.source, "text"], ["published", null, "text"], ["–", null, "text params"]];
      if (benchmark.protocol === "subset_sweep") cells.push(["–", null, ""]);
      const average = publishedValue(row, finetuned, null, view);
      cells.push([fmt(average), isNumber(row.average) ? "published average" : "mean of the published per-task numbers", ""]);
      for (const task of benchmark.tasks) cells.push([fmt(publishedValue(row, finetuned, task, view)), null, ""]);
      for (const [text, title, cls] of cells.slice(0, ncols)) {
        const td = tr.appendChild(node("td", { class: cls }, text));
        if (title) td.setAttribute("title", title);
      }
      rows.push(tr);
    }
  }
  return rows;
}

function renderTable(section, benchmark, entries, state) {
  const cols = columns(benchmark);
  const table = node("table", { class: "board" });
  const head = node("tr");
  cols.forEach((col, i) => {
    const th = node("th", { scope: "col", class: col.text ? "text" : "" });
    if (col.hint) th.setAttribute("title", col.hint);
    if (i === state.column) th.setAttribute("aria-sort", state.dir);
    const button = node("button", { type: "button" }, col.label);
    button.addEventListener("click", () => {
      state.dir = state.column === i ? (state.dir === "descending" ? "ascending" : "descending") : col.text ? "ascending" : "descending";
      state.column = i;
      renderTable(section, benchmark, entries, state);
    });
    th.appendChild(button);
    head.appendChild(th);
  });
  table.appendChild(node("thead")).appendChild(head);
  const body = table.appendChild(node("tbody"));
  const col = cols[state.column];
  const rows = entries.map((e, i) => [e, i]).sort(([a, i], [b, j]) => compare(col.value(a, state.view), col.value(b, state.view), state.dir) || i - j);
  for (const [entry] of rows) {
    const tr = node("tr");
    for (const c of cols) {
      const { text, title } = c.cell(entry, state.view);
      const td = node("td", { class: [c.text ? "text" : "", c.cls || ""].join(" ").trim() }, text);
      if (title) td.setAttribute("title", title);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  for (const tr of publishedRows(benchmark, state.published, state.view, cols.length)) body.appendChild(tr);  // never ranked: always below
  const old = section.querySelector("table.board");
  if (old) old.replaceWith(table); else section.querySelector(".scroll").appendChild(table);
}

function renderPlot(entries) {
  const W = 680, H = 360, L = 56, R = 190, T = 20, B = 42;
  const series = entries.filter((e) => Object.keys(e.sweep.by_size).length > 0);
  const sizes = [...new Set(series.flatMap((e) => Object.keys(e.sweep.by_size).map(Number)))].sort((a, b) => a - b);
  const svg = svgNode("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot" });
  svg.appendChild(svgNode("title", {}, "normalised score vs number of tasks (mean ± std over subsets)"));
  if (!series.length) return svg;
  const lows = series.flatMap((e) => Object.values(e.sweep.by_size).map((s) => s.mean - s.std));
  const highs = series.flatMap((e) => Object.values(e.sweep.by_size).map((s) => s.mean + s.std));
  let y0 = Math.max(0, Math.floor(Math.min(...lows) * 10) / 10), y1 = Math.ceil(Math.max(...highs) * 10) / 10;
  if (y1 <= y0) y1 = y0 + 0.1;
  const x0 = sizes[0], x1 = sizes[sizes.length - 1];
  const pad = 24;  // keeps the first and last points off the axes
  const px = (s) => (x1 === x0 ? L + (W - L - R) / 2 : L + pad + ((s - x0) / (x1 - x0)) * (W - L - R - 2 * pad));
  const py = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const ticks = Math.round((y1 - y0) / 0.1) <= 10 ? 0.1 : 0.2;
  for (let v = y0; v <= y1 + 1e-9; v += ticks) {
    svg.appendChild(svgNode("line", { x1: L, x2: W - R, y1: py(v), y2: py(v), stroke: "#e3e6ec" }));
    svg.appendChild(svgNode("text", { x: L - 6, y: py(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
  }
  for (const s of sizes) svg.appendChild(svgNode("text", { x: px(s), y: H - B + 16, "text-anchor": "middle" }, s));
  svg.appendChild(svgNode("text", { x: L + (W - L - R) / 2, y: H - 8, "text-anchor": "middle" }, "number of tasks"));
  svg.appendChild(svgNode("text", { x: 14, y: T + (H - T - B) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${T + (H - T - B) / 2})` }, "normalised score"));
  svg.appendChild(svgNode("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#888" }));
  svg.appendChild(svgNode("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#888" }));
  series.forEach((entry, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = Object.entries(entry.sweep.by_size).map(([k, s]) => [Number(k), s]).sort((a, b) => a[0] - b[0]);
    const group = svgNode("g", { class: "series" });
    group.appendChild(svgNode("polyline", { points: points.map(([k, s]) => `${px(k)},${py(s.mean)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
    for (const [k, s] of points) {
      group.appendChild(svgNode("line", { x1: px(k), x2: px(k), y1: py(s.mean - s.std), y2: py(s.mean + s.std), stroke: colour }));
      const dot = group.appendChild(svgNode("circle", { cx: px(k), cy: py(s.mean), r: 3.5, fill: colour }));
      dot.appendChild(svgNode("title", {}, `${entry.method.name}, ${k} tasks: ${fmt(s.mean)} ± ${fmt(s.std)} over ${s.n} subsets`));
    }
    svg.appendChild(group);
    const y = T + 8 + i * 18;
    const twins = series.filter((e) => e.method.name === entry.method.name);
    const label = twins.length > 1 ? `${entry.method.name} #${twins.indexOf(entry) + 1}` : entry.method.name;
    const legend = svg.appendChild(svgNode("g", { class: "legend" }));
    legend.appendChild(svgNode("title", {}, parametersText(entry.method)));
    legend.appendChild(svgNode("rect", { x: W - R + 12, y: y - 8, width: 12, height: 4, fill: colour }));
    legend.appendChild(svgNode("text", { x: W - R + 30, y: y - 2 }, label));
  });
  return svg;
}

function renderBenchmark(benchmark, entries, published) {
  const section = node("section", { class: "benchmark" });
  section.appendChild(node("h2", {}, benchmarkTitle(benchmark)));
  section.appendChild(node("p", { class: "muted details" }, benchmarkDetails(benchmark)));
  const controls = section.appendChild(node("div", { class: "controls", role: "radiogroup" }));
  const sweep = benchmark.protocol === "subset_sweep";
  const state = { view: "normalized", column: columns(benchmark).findIndex((c) => c.headline), dir: "descending", published };
  const name = `view-${++sectionCount}`;
  for (const [view, label] of [["normalized", "normalised scores"], ["score", "absolute scores"]]) {
    const wrap = controls.appendChild(node("label"));
    const input = wrap.appendChild(node("input", { type: "radio", name, value: view }));
    input.checked = view === state.view;
    input.addEventListener("change", () => {
      state.view = view;
      renderTable(section, benchmark, entries, state);
    });
    wrap.appendChild(document.createTextNode(` ${label}`));
  }
  section.appendChild(node("div", { class: "scroll" }));
  renderTable(section, benchmark, entries, state);
  if (sweep && entries.length) {
    section.appendChild(node("h3", {}, "normalised score vs number of tasks"));
    section.appendChild(renderPlot(entries));
  }
  return section;
}

function render(board) {
  const groups = new Map();
  for (const entry of board.entries) {
    const key = benchmarkKey(entry.benchmark);
    if (!groups.has(key)) groups.set(key, { benchmark: entry.benchmark, entries: [] });
    groups.get(key).entries.push(entry);
  }
  const main = document.getElementById("boards");
  main.replaceChildren();
  const ordered = [...groups.values()].sort((a, b) => benchmarkTitle(a.benchmark).localeCompare(benchmarkTitle(b.benchmark)) || a.benchmark.modelpool.localeCompare(b.benchmark.modelpool));
  const shown = new Set();
  for (const { benchmark, entries } of ordered) {
    const published = publishedFor(board, benchmark);
    published.forEach((p) => shown.add(p));
    main.appendChild(renderBenchmark(benchmark, entries, published));
  }
  for (const set of (board.published || []).filter((p) => !shown.has(p))) {  // published numbers no entry measures yet: a table of their own
    const tasks = [...new Set(set.rows.flatMap((r) => Object.keys(r.tasks)))];
    const benchmark = { family: set.family, checkpoint_family: set.checkpoint_family, mode: set.mode, taskpool: set.taskpool, tasks, protocol: "published", modelpool: "–", split: "test", limit: null };
    main.appendChild(renderBenchmark(benchmark, [], [set]));
  }
  const pools = [...new Set(board.entries.map((e) => e.benchmark.modelpool))].sort().join(", ");
  document.getElementById("status").textContent =
    `${board.entries.length} entries in ${groups.size} benchmarks (model pools: ${pools || "none"}); updated ${board.updated}.`;
}

async function main() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("leaderboard.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const board = await response.json();
    if (board.schema !== "fusionbench.leaderboard/1" || !Array.isArray(board.entries)) throw new Error(`unexpected schema ${JSON.stringify(board.schema)}`);
    render(board);
    document.body.dataset.state = "ready";
  } catch (error) {
    status.textContent = `Could not load leaderboard.json (${error.message}). Serve this folder over HTTP, e.g. python -m http.server -d leaderboard, and open http://localhost:8000/.`;
    status.className = "error";
    document.body.dataset.state = "error";
  }
}

main();
