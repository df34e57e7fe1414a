// The dagwright web UI: a workflow list, a workflow's DAG and timeline, a node panel with logs, and the actions.
// Plain browser JavaScript, no build step. Everything that comes from a workflow (names, messages, outputs, log
// lines) is put on the page with textContent or as an SVG attribute value, never parsed as HTML.
"use strict";
(() => {
  const TOKEN = document.querySelector('meta[name="dagwright-token"]').content;
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_W = 170, NODE_H = 36;
  const DAGRE_MAX = 400; // dagre's layout takes seconds past a few hundred nodes; beyond, a linear layered layout
  const SVG_MAX = 1500; // past this many nodes the DAG is painted on a canvas: an SVG of 10,000 labelled nodes
  // repaints at about one frame a second, a canvas draws only what is in view, and labels only when readable
  const COLORS = {
    Pending: ["#f1f3f5", "#9aa4b1"], Running: ["#d0e5ff", "#2f74c0"], Retrying: ["#d0e5ff", "#2f74c0"],
    Succeeded: ["#c9efd2", "#2f9e44"], Failed: ["#ffd3cf", "#c92a2a"], AwaitingApproval: ["#ffe9b0", "#e8a400"],
    Skipped: ["#eeeeee", "#aaaaaa"], Stopped: ["#eeeeee", "#aaaaaa"],
  };
  const TIMELINE_MAX = 2000;
  const LOG_MAX = 1 << 20;
  const FINISHED = new Set(["Succeeded", "Failed", "Stopped"]);
  const $ = (id) => document.getElementById(id);

  const state = {
    info: { actions: [], namespace: null, label: "" },
    rows: [],
    streams: [],
    logStream: null,
    wf: null, // {namespace, name, key, head, nodes: Map name -> compact status, els: Map name -> element}
    selected: null,
    dirty: new Set(),
    frame: 0,
  };
  window.dagwright = state; // for the browser tests and the bench: what the page holds

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function banner(text, kind) {
    const box = $("banner");
    box.textContent = text || "";
    box.className = kind || "";
    box.hidden = !text;
  }

  function closeStreams() {
    state.streams.forEach((s) => s.close());
    state.streams = [];
    closeLogs();
  }

  function stream(url, handlers) {
    const source = new EventSource(url);
    for (const [event, handler] of Object.entries(handlers)) {
      source.addEventListener(event, (e) => handler(JSON.parse(e.data)));
    }
    state.streams.push(source);
    return source;
  }

  function age(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (seconds >= size) return Math.floor(seconds / size) + unit;
    }
    return Math.floor(seconds) + "s";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.round(seconds);
    if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    return `${s}s`;
  }

  function etaText(eta) {
    return eta === null || eta === undefined ? "" : `~${duration(eta)} left`;
  }

  function api(path) {
    return path.split("/").map(encodeURIComponent).join("/");
  }

  // ---------------------------------------------------------------- routing

  async function route() {
    closeStreams();
    banner("");
    const match = location.hash.match(/^#\/wf\/([^/]+)\/([^/]+)$/);
    if (match) openWorkflow(decodeURIComponent(match[1]), decodeURIComponent(match[2]));
    else openList();
  }

  // ---------------------------------------------------------------- the list

  async function openList() {
    state.wf = null;
    await infoReady;
    if (location.hash.startsWith("#/wf/")) return; // left for a workflow meanwhile
    $("workflow-view").hidden = true;
    $("list-view").hidden = false;
    $("crumb").textContent = "";
    document.title = "dagwright";
    const namespace = $("f-namespace").value.trim();
    const query = namespace ? `?namespace=${encodeURIComponent(namespace)}` : "";
    stream(`/api/workflows/stream${query}`, {
      list: (rows) => {
        banner("");
        state.rows = rows;
        renderList();
      },
      failure: (problem) => banner(problem.error),
    });
  }

  function labelFilter() {
    return $("f-labels").value.split(",").map((s) => s.trim()).filter(Boolean).map((pair) => pair.split("="));
  }

  function renderList() {
    const phase = $("f-phase").value;
    const template = $("f-template").value.trim();
    const labels = labelFilter();
    const body = document.querySelector("#workflows tbody");
    const rows = state.rows.filter(
      (row) =>
        (!phase || row.phase === phase) &&
        (!template || row.template === template) &&
        labels.every(([key, value]) => key in row.labels && (value === undefined || row.labels[key] === value)),
    );
    body.replaceChildren(
      ...rows.map((row) => {
        const tr = el("tr");
        tr.dataset.name = row.name;
        tr.dataset.namespace = row.namespace;
        const link = el("a", row.name);
        link.href = `#/wf/${encodeURIComponent(row.namespace)}/${encodeURIComponent(row.name)}`;
        const name = el("td");
        name.append(link);
        if (row.template) name.append(" ", el("span", `template ${row.template}`, "tag tag-template"));
        if (row.cron) name.append(" ", el("span", `cron ${row.cron}`, "tag tag-cron"));
        const phaseCell = el("td");
        phaseCell.append(el("span", row.paused && row.phase === "Running" ? "Paused" : row.phase, `phase phase-${row.phase}`));
        const progress = el("td");
        const bar = el("div", null, "bar");
        const fill = el("div");
        fill.style.width = `${row.total ? (100 * row.done) / row.total : 0}%`;
        bar.append(fill);
        progress.append(bar, " ", el("span", `${row.done}/${row.total}`, "progress"));
        const ageCell = el("td", age(row.created));
        ageCell.dataset.created = row.created || "";
        tr.append(name, el("td", row.namespace), phaseCell, progress, ageCell, el("td", etaText(row.eta)));
        return tr;
      }),
    );
    $("list-empty").hidden = rows.length > 0;
  }

  // ---------------------------------------------------------------- a workflow

  async function openWorkflow(namespace, name) {
    $("list-view").hidden = true;
    $("workflow-view").hidden = false;
    $("panel").hidden = true;
    $("crumb").textContent = `${namespace}/${name}`;
    $("wf-name").textContent = name;
    document.title = `${name} - dagwright`;
    document.body.dataset.ready = "";
    state.selected = null;
    view.touched = false;
    state.wf = { namespace, name, key: null, head: null, nodes: new Map(), els: new Map(), badges: new Map(), kinds: new Map(), graph: null };
    const wf = state.wf;
    let loading = null;
    const apply = async (message, snapshot) => {
      if (wf !== state.wf) return;
      if (loading) await loading;
      if (message.head.specKey !== wf.key) {
        loading = loadGraph(wf);
        await loading;
      }
      loading = null;
      if (snapshot) wf.nodes = new Map();
      for (const [node, entry] of Object.entries(message.nodes)) {
        wf.nodes.set(node, entry);
        state.dirty.add(node);
      }
      wf.head = message.head;
      renderHead();
      schedule();
      if (snapshot) document.body.dataset.ready = "1";
    };
    let queue = Promise.resolve();
    loading = loadGraph(wf); // the layout starts while the server reads the workflow for the stream
    const base = `/api/workflows/${api(namespace)}/${api(name)}`;
    stream(`${base}/stream`, {
      snapshot: (m) => (queue = queue.then(() => apply(m, true))),
      update: (m) => (queue = queue.then(() => apply(m, false))),
      failure: (problem) => banner(problem.error),
    });
  }

  async function loadGraph(wf) {
    const response = await fetch(`/api/workflows/${api(wf.namespace)}/${api(wf.name)}/graph`);
    const graph = await response.json();
    if (!response.ok) {
      banner(graph.error);
      return;
    }
    wf.key = graph.key;
    wf.graph = graph;
    drawGraph(wf, graph.nodes);
  }

  function renderHead() {
    const head = state.wf.head;
    const phase = head.paused && head.phase === "Running" ? "Paused" : head.phase;
    const badge = $("wf-phase");
    badge.textContent = phase;
    badge.className = `phase phase-${phase}`;
    $("wf-bar").style.width = `${head.total ? (100 * head.done) / head.total : 0}%`;
    $("wf-progress").textContent = `${head.done}/${head.total}`;
    $("wf-eta").textContent = etaText(head.eta);
    $("wf-message").textContent = head.message || "";
    const allowed = new Set(state.info.actions);
    const finished = FINISHED.has(head.phase);
    const enabled = {
      pause: !head.paused && !finished,
      resume: head.paused,
      stop: !finished && !head.stopped,
      retry: head.phase === "Failed" || head.phase === "Stopped",
    };
    for (const button of document.querySelectorAll("#wf-actions button")) {
      const action = button.dataset.action;
      button.hidden = !allowed.has(action);
      button.disabled = !enabled[action];
    }
    if (state.selected) renderApproval();
  }

  // ---------------------------------------------------------------- layout and drawing

  // `finally` nodes run after every regular node: laid out below them (an edge from each regular sink that is
  // only for the layout, never drawn) so they read as apart.
  function afterRegular(nodes) {
    const regular = nodes.filter((n) => !n.finally);
    const finals = nodes.filter((n) => n.finally);
    if (!finals.length || !regular.length) return [];
    const parents = new Set(regular.flatMap((n) => n.deps));
    const sinks = regular.map((n) => n.name).filter((name) => !parents.has(name));
    return finals.filter((n) => !n.deps.length).flatMap((n) => sinks.map((sink) => [sink, n.name]));
  }

  function layout(nodes) {
    const extra = afterRegular(nodes);
    if (nodes.length <= DAGRE_MAX && window.dagre) {
      const g = new dagre.graphlib.Graph();
      g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 36, marginx: 10, marginy: 10 });
      g.setDefaultEdgeLabel(() => ({}));
      for (const node of nodes) g.setNode(node.name, { width: NODE_W, height: NODE_H });
      for (const node of nodes) for (const dep of node.deps) g.setEdge(dep, node.name);
      for (const [a, b] of extra) g.setEdge(a, b, { hidden: true });
      dagre.layout(g);
      const positions = new Map(nodes.map((n) => [n.name, g.node(n.name)]));
      const edges = g.edges().filter((e) => !g.edge(e).hidden).map((e) => g.edge(e).points);
      return { positions, edges };
    }
    return layered(nodes, extra);
  }

  // Ranks by longest path from a root, order within a rank by the mean position of the parents, wide ranks
  // folded into rows of ROW: linear time, so a 10,000-node DAG lays out in milliseconds.
  function layered(nodes, extra) {
    const ROW = 60;
    const byName = new Map(nodes.map((n) => [n.name, n]));
    const rank = new Map();
    const children = new Map(nodes.map((n) => [n.name, []]));
    const indegree = new Map();
    for (const n of nodes) {
      indegree.set(n.name, n.deps.filter((d) => byName.has(d)).length);
      for (const d of n.deps) if (children.has(d)) children.get(d).push(n.name);
    }
    for (const [a, b] of extra) {
      children.get(a).push(b);
      indegree.set(b, indegree.get(b) + 1);
    }
    let frontier = nodes.filter((n) => indegree.get(n.name) === 0).map((n) => n.name);
    frontier.forEach((name) => rank.set(name, 0));
    while (frontier.length) {
      const next = [];
      for (const name of frontier) {
        for (const child of children.get(name)) {
          rank.set(child, Math.max(rank.get(child) || 0, rank.get(name) + 1));
          indegree.set(child, indegree.get(child) - 1);
          if (indegree.get(child) === 0) next.push(child);
        }
      }
      frontier = next;
    }
    const ranks = [];
    for (const n of nodes) {
      const r = rank.get(n.name) || 0;
      (ranks[r] = ranks[r] || []).push(n.name);
    }
    const x = new Map();
    const positions = new Map();
    let y = 10 + NODE_H / 2;
    for (const names of ranks) {
      if (!names) continue;
      const keyed = names.map((name) => {
        const deps = byName.get(name).deps.filter((d) => x.has(d));
        return [deps.length ? deps.reduce((s, d) => s + x.get(d), 0) / deps.length : 0, name];
      });
      keyed.sort((a, b) => a[0] - b[0]);
      keyed.forEach(([, name], i) => {
        const column = i % ROW;
        const px = 10 + NODE_W / 2 + column * (NODE_W + 18);
        x.set(name, px);
        positions.set(name, { x: px, y: y + Math.floor(i / ROW) * (NODE_H + 14) });
      });
      y += Math.ceil(keyed.length / ROW) * (NODE_H + 14) + 36;
    }
    const edges = [];
    for (const n of nodes) {
      for (const d of n.deps) {
        const a = positions.get(d), b = positions.get(n.name);
        if (a && b) edges.push([{ x: a.x, y: a.y + NODE_H / 2 }, { x: b.x, y: b.y - NODE_H / 2 }]);
      }
    }
    return { positions, edges };
  }

  function drawGraph(wf, nodes) {
    const { positions, edges } = layout(nodes);
    wf.positions = positions;
    wf.canvas = nodes.length > SVG_MAX;
    wf.kinds = new Map(nodes.filter((n) => n.forEach || n.finally).map((n) => [n.name, n]));
    $("dag").hidden = wf.canvas;
    $("dagc").hidden = !wf.canvas;
    if (wf.canvas) {
      wf.order = nodes.map((n) => n.name);
      const path = new Path2D();
      for (const points of edges) {
        path.moveTo(points[0].x, points[0].y);
        for (let i = 1; i < points.length; i++) path.lineTo(points[i].x, points[i].y);
      }
      wf.edgePath = path;
      $("nodes").replaceChildren();
      $("edges").setAttribute("d", "");
      wf.els = new Map();
      fit(positions);
      return;
    }
    const d = [];
    for (const points of edges) {
      d.push(`M${points[0].x.toFixed(1)},${points[0].y.toFixed(1)}`);
      for (let i = 1; i < points.length; i++) d.push(`L${points[i].x.toFixed(1)},${points[i].y.toFixed(1)}`);
    }
    $("edges").setAttribute("d", d.join(""));
    const group = $("nodes");
    const fragment = document.createDocumentFragment();
    wf.els = new Map();
    wf.badges = new Map();
    for (const node of nodes) {
      const p = positions.get(node.name);
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", `node phase-Pending${nodeClass(node)}`);
      g.setAttribute("transform", `translate(${(p.x - NODE_W / 2).toFixed(1)},${(p.y - NODE_H / 2).toFixed(1)})`);
      g.dataset.name = node.name;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("width", NODE_W);
      rect.setAttribute("height", NODE_H);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", NODE_W / 2);
      label.setAttribute("y", NODE_H / 2);
      label.textContent = node.name.length > 22 ? node.name.slice(0, 21) + "…" : node.name;
      g.append(rect, label);
      if (node.forEach) {
        const badge = document.createElementNS(SVG, "text");
        badge.setAttribute("class", "badge");
        badge.setAttribute("x", NODE_W - 4);
        badge.setAttribute("y", 9);
        badge.textContent = typeof node.forEach === "number" ? `0/${node.forEach}` : "forEach";
        g.append(badge);
        wf.badges.set(node.name, badge);
      }
      const mark = [node.forEach && "forEach", node.approval && "approval", node.finally && "finally", node.when && "when"].filter(Boolean).join(" · ");
      if (mark) {
        label.setAttribute("y", NODE_H / 2 - 5);
        const small = document.createElementNS(SVG, "text");
        small.setAttribute("class", "mark");
        small.setAttribute("x", NODE_W / 2);
        small.setAttribute("y", NODE_H / 2 + 10);
        small.textContent = mark;
        g.append(small);
      }
      fragment.append(g);
      wf.els.set(node.name, g);
      state.dirty.add(node.name);
    }
    group.replaceChildren(fragment);
    fit(positions);
  }

  function nodeClass(node) {
    return (node && node.finally ? " finally" : "") + (node && node.forEach ? " foreach" : "");
  }

  function schedule() {
    if (!state.frame) state.frame = requestAnimationFrame(paint);
  }

  function paint() {
    state.frame = 0;
    const wf = state.wf;
    if (!wf) return;
    if (wf.canvas) {
      if (state.dirty.has(state.selected)) refreshPanelSoon();
      state.dirty.clear();
      paintCanvas(wf);
      if (!$("timeline").hidden) timelineSoon();
      return;
    }
    for (const name of state.dirty) {
      const g = wf.els.get(name);
      if (!g) continue;
      const entry = wf.nodes.get(name) || {};
      const phase = entry.phase || "Pending";
      g.setAttribute("class", `node phase-${phase}${nodeClass(wf.kinds.get(name))}${name === state.selected ? " selected" : ""}`);
      g.dataset.phase = phase;
      const badge = wf.badges.get(name);
      if (badge && entry.progress) badge.textContent = entry.progress;
      if (name === state.selected) refreshPanelSoon();
    }
    state.dirty.clear();
    if (!$("timeline").hidden) timelineSoon();
  }

  // ---------------------------------------------------------------- pan and zoom

  const view = { k: 1, x: 0, y: 0, touched: false };

  function applyView() {
    if (state.wf && state.wf.canvas) schedule();
    else $("viewport").setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  }

  function paintCanvas(wf) {
    const canvas = $("dagc");
    const box = canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(box.width * ratio) || canvas.height !== Math.round(box.height * ratio)) {
      canvas.width = Math.round(box.width * ratio);
      canvas.height = Math.round(box.height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(ratio * view.k, 0, 0, ratio * view.k, ratio * view.x, ratio * view.y);
    ctx.lineWidth = 1.2 / view.k;
    ctx.strokeStyle = "#9aa4b1";
    ctx.stroke(wf.edgePath);
    // What is in view, in graph coordinates: only those nodes are drawn.
    const x0 = -view.x / view.k - NODE_W, y0 = -view.y / view.k - NODE_H;
    const x1 = (box.width - view.x) / view.k + NODE_W, y1 = (box.height - view.y) / view.k + NODE_H;
    const labels = view.k >= 0.45;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const name of wf.order) {
      const p = wf.positions.get(name);
      if (p.x < x0 || p.x > x1 || p.y < y0 || p.y > y1) continue;
      const phase = (wf.nodes.get(name) || {}).phase || "Pending";
      const [fill, stroke] = COLORS[phase] || COLORS.Pending;
      ctx.fillStyle = fill;
      ctx.fillRect(p.x - NODE_W / 2, p.y - NODE_H / 2, NODE_W, NODE_H);
      const kind = wf.kinds.get(name);
      if (labels || name === state.selected) {
        ctx.strokeStyle = name === state.selected ? "#000" : stroke;
        ctx.lineWidth = (name === state.selected ? 2.5 : 1) / view.k;
        ctx.setLineDash(kind && kind.finally ? [5 / view.k, 3 / view.k] : []);
        ctx.strokeRect(p.x - NODE_W / 2, p.y - NODE_H / 2, NODE_W, NODE_H);
        ctx.setLineDash([]);
      }
      if (labels) {
        ctx.fillStyle = "#1d232b";
        const badge = kind && kind.forEach ? ` [${(wf.nodes.get(name) || {}).progress || "forEach"}]` : "";
        const text = name.length > 22 - badge.length ? name.slice(0, Math.max(4, 21 - badge.length)) + "…" : name;
        ctx.fillText(text + badge, p.x, p.y);
      }
    }
  }

  // Where a node is on the screen (client coordinates), for the bench and the tests of a canvas-drawn DAG.
  state.screenOf = (name) => {
    const p = state.wf && state.wf.positions.get(name);
    const box = $(state.wf.canvas ? "dagc" : "dag").getBoundingClientRect();
    return p && { x: box.left + view.x + p.x * view.k, y: box.top + view.y + p.y * view.k };
  };

  function nodeAt(wf, clientX, clientY) {
    const box = $("dagc").getBoundingClientRect();
    const gx = (clientX - box.left - view.x) / view.k, gy = (clientY - box.top - view.y) / view.k;
    for (const [name, p] of wf.positions) {
      if (Math.abs(gx - p.x) <= NODE_W / 2 && Math.abs(gy - p.y) <= NODE_H / 2) return name;
    }
    return null;
  }

  function fit(positions) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const p of positions.values()) {
      x0 = Math.min(x0, p.x - NODE_W / 2);
      y0 = Math.min(y0, p.y - NODE_H / 2);
      x1 = Math.max(x1, p.x + NODE_W / 2);
      y1 = Math.max(y1, p.y + NODE_H / 2);
    }
    const box = $("graph").getBoundingClientRect();
    if (!isFinite(x0) || !box.width) return;
    view.k = Math.min(1.2, Math.max(0.02, Math.min(box.width / (x1 - x0 + 20), box.height / (y1 - y0 + 20))));
    view.x = (box.width - (x1 - x0) * view.k) / 2 - x0 * view.k;
    view.y = 10 - y0 * view.k;
    applyView();
  }

  function setupPanZoom() {
    for (const surface of [$("dag"), $("dagc")]) setupSurface(surface);
    window.addEventListener("resize", () => state.wf && state.wf.canvas && schedule());
  }

  function setupSurface(svg) {
    let drag = null;
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = svg.getBoundingClientRect();
      const factor = Math.exp(-e.deltaY * 0.0015);
      const k = Math.min(4, Math.max(0.01, view.k * factor));
      const px = e.clientX - box.left, py = e.clientY - box.top;
      view.x = px - ((px - view.x) * k) / view.k;
      view.y = py - ((py - view.y) * k) / view.k;
      view.k = k;
      view.touched = true;
      applyView();
    }, { passive: false });
    svg.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
    });
    svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
      if (drag.moved) {
        view.touched = true;
        view.x = drag.vx + dx;
        view.y = drag.vy + dy;
        applyView();
      }
    });
    svg.addEventListener("pointerup", (e) => {
      const moved = drag && drag.moved;
      drag = null;
      if (moved) return;
      if (state.wf && state.wf.canvas) {
        const name = nodeAt(state.wf, e.clientX, e.clientY);
        if (name) openPanel(name);
        return;
      }
      const g = e.target.closest && e.target.closest(".node");
      if (g) openPanel(g.dataset.name);
    });
  }

  // ---------------------------------------------------------------- the node panel

  let panelTimer = 0;
  function refreshPanelSoon() {
    clearTimeout(panelTimer);
    panelTimer = setTimeout(() => state.selected && loadPanel(state.selected, false), 300);
  }

  function openPanel(name) {
    const wf = state.wf;
    const previous = state.selected;
    state.selected = name;
    if (previous) state.dirty.add(previous);
    state.dirty.add(name);
    schedule();
    $("panel").hidden = false;
    $("p-name").textContent = name;
    $("p-message").value = "";
    closeLogs();
    $("p-logs").textContent = "";
    $("p-logs-end").textContent = "";
    $("p-attempt").replaceChildren();
    if (!view.touched && wf.positions) requestAnimationFrame(() => fit(wf.positions)); // the panel took room
    loadPanel(name, true);
    return wf;
  }

  async function loadPanel(name, first) {
    const wf = state.wf;
    const response = await fetch(`/api/workflows/${api(wf.namespace)}/${api(wf.name)}/nodes/${api(name)}`);
    const detail = await response.json();
    if (state.selected !== name || wf !== state.wf) return;
    if (!response.ok) {
      banner(detail.error);
      return;
    }
    const status = detail.status;
    const facts = [
      ["phase", status.phase],
      ["attempts", status.attempts],
      ["exit code", status.exitCode],
      ["reason", status.reason],
      ["message", status.message],
      ["progress", status.progress],
      ["started", status.startedAt],
      ["attempt started", status.attemptStartedAt],
      ["finished", status.finishedAt],
      ["duration", status.startedAt ? duration(((status.finishedAt ? Date.parse(status.finishedAt) : Date.now()) - Date.parse(status.startedAt)) / 1000) : null],
      ["next attempt", status.nextAttemptAt],
      ["image", detail.spec.image],
      ["depends on", (detail.spec.dependsOn || []).join(", ")],
      ["when", detail.spec.when],
      ["timeout", detail.spec.timeoutSeconds ? `${detail.spec.timeoutSeconds}s` : null],
      ["env", (detail.spec.env || []).join(", ")],
    ];
    const dl = $("p-facts");
    dl.replaceChildren();
    for (const [key, value] of facts) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", key), el("dd", value));
    }
    const rendered = detail.rendered;
    const command = rendered ? [...rendered.command, ...rendered.args] : [...(detail.spec.command || []), ...(detail.spec.args || [])];
    $("p-command").textContent =
      (detail.items ? "once per item, {{ item }} filled in (running and failed items below show theirs):\n" : "") +
      (detail.spec.approval ? "(an approval node: runs nothing)" : command.length ? command.map(quote).join(" ") : "(the image's own entrypoint)") +
      (rendered && rendered.inPod ? "\n(its templates read outputs kept in Redis: node-runner renders them in the pod)" : "");
    renderItems(detail.items, rendered && rendered.items);
    $("p-outputs").textContent = status.outputs ? JSON.stringify(status.outputs, null, 2) : status.outputsRef ? `in Redis: ${status.outputsRef}` : "(none)";
    renderApproval();
    const select = $("p-attempt");
    const attempts = status.attempts || 0;
    if (select.options.length !== attempts) {
      const chosen = select.value;
      select.replaceChildren(...Array.from({ length: attempts }, (_, i) => {
        const option = el("option", `attempt ${i + 1}`);
        option.value = String(i + 1);
        return option;
      }));
      select.value = first || !chosen ? String(attempts) : chosen;
      if (attempts && !detail.spec.approval && !detail.items && (first || !state.logStream)) startLogs(name, Number(select.value));
    }
    if (detail.items) {
      select.replaceChildren();
      $("p-logs-end").textContent = "a forEach node's logs are its items' (dagwright run: LOGS_DIR/NODE.ITEM.ATTEMPT.log)";
    } else if (detail.spec.approval) $("p-logs-end").textContent = "an approval node runs nothing: no logs";
    else if (!attempts) $("p-logs-end").textContent = "not started yet";
  }

  // A forEach node's items: one cell per item coloured by its letter in `states` (a canvas: 10,000 cells draw in a
  // millisecond, where 10,000 elements would not), and the few with detail (running, retrying, failed) listed.
  const ITEM_STATES = {
    P: ["Pending", "#e3e6ea"], R: ["Running", "#2f74c0"], B: ["Retrying", "#74a7e0"],
    S: ["Succeeded", "#2f9e44"], F: ["Failed", "#c92a2a"], X: ["Not run", "#aaaaaa"],
  };
  const CELL = 8;

  function renderItems(items, renderedItems) {
    $("p-items").hidden = !items;
    if (!items) return;
    const states = items.states || "";
    const counts = {};
    for (const letter of states) counts[letter] = (counts[letter] || 0) + 1;
    $("p-items-count").textContent =
      `${counts.S || 0}/${items.total} done` +
      Object.entries(counts).filter(([l]) => l !== "S").map(([l, n]) => ` · ${n} ${(ITEM_STATES[l] || [l])[0].toLowerCase()}`).join("");
    const canvas = $("p-items-grid");
    const width = Math.max(CELL * 10, canvas.parentElement.clientWidth || 380);
    const columns = Math.floor(width / CELL);
    const height = Math.max(CELL, Math.ceil(states.length / columns) * CELL);
    if (canvas.width !== columns * CELL || canvas.height !== height) {
      canvas.width = columns * CELL;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const [letter, [, color]] of Object.entries(ITEM_STATES)) {
      ctx.fillStyle = color;
      for (let i = states.indexOf(letter); i !== -1; i = states.indexOf(letter, i + 1)) {
        ctx.fillRect((i % columns) * CELL, Math.floor(i / columns) * CELL, CELL - 1, CELL - 1);
      }
    }
    const detail = items.detail || {};
    canvas.onmousemove = canvas.onclick = (event) => {
      const box = canvas.getBoundingClientRect();
      const scale = canvas.width / box.width;
      const i = Math.floor(((event.clientY - box.top) * scale) / CELL) * columns + Math.floor(((event.clientX - box.left) * scale) / CELL);
      $("p-items-hover").textContent = i >= 0 && i < states.length ? itemLine(i, states[i], detail[i]) : "";
    };
    const list = $("p-items-detail");
    list.replaceChildren(
      ...Object.entries(detail).map(([i, entry]) => {
        const li = el("li", itemLine(Number(i), states[i], entry));
        li.dataset.item = i;
        const launch = renderedItems && renderedItems[i];
        if (launch) li.append(el("code", [...launch.command, ...launch.args].map(quote).join(" ")));
        return li;
      }),
    );
    if (items.more) list.append(el("li", `… and ${items.more} more`));
  }

  function itemLine(i, letter, entry) {
    const parts = [`item ${i}`, (ITEM_STATES[letter] || [letter])[0]];
    if (entry) {
      if (entry.attempts) parts.push(`attempt ${entry.attempts}`);
      if (entry.exitCode !== undefined && entry.exitCode !== null) parts.push(`exit ${entry.exitCode}`);
      if (entry.reason) parts.push(entry.reason + (entry.message ? `: ${entry.message}` : ""));
      if (entry.nextAttemptAt) parts.push(`next attempt ${entry.nextAttemptAt}`);
    }
    return parts.join(" · ");
  }

  function quote(word) {
    return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${String(word).replace(/'/g, `'\\''`)}'`;
  }

  function renderApproval() {
    const entry = state.wf && state.wf.nodes.get(state.selected);
    const waiting = entry && entry.phase === "AwaitingApproval" && state.info.actions.includes("approve");
    $("p-approval").hidden = !waiting;
  }

  function closeLogs() {
    if (state.logStream) state.logStream.close();
    state.logStream = null;
  }

  function startLogs(name, attempt) {
    closeLogs();
    const wf = state.wf;
    const pre = $("p-logs");
    pre.textContent = "";
    $("p-logs-end").textContent = "";
    const source = new EventSource(`/api/workflows/${api(wf.namespace)}/${api(wf.name)}/nodes/${api(name)}/logs?attempt=${attempt}`);
    state.logStream = source;
    source.addEventListener("log", (e) => {
      let text = pre.textContent + JSON.parse(e.data);
      if (text.length > LOG_MAX) text = text.slice(text.length - LOG_MAX);
      pre.textContent = text;
      pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("end", (e) => {
      $("p-logs-end").textContent = JSON.parse(e.data).message;
      source.close();
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) $("p-logs-end").textContent = "log stream closed";
    };
  }

  // ---------------------------------------------------------------- the timeline

  let timelineTimer = 0;
  function timelineSoon() {
    if (!timelineTimer) timelineTimer = setTimeout(() => { timelineTimer = 0; renderTimeline(); }, 1000);
  }

  function renderTimeline() {
    const wf = state.wf;
    if (!wf) return;
    const started = [...wf.nodes.entries()].filter(([, n]) => n.startedAt).sort((a, b) => Date.parse(a[1].startedAt) - Date.parse(b[1].startedAt));
    const box = $("timeline");
    if (!started.length) {
      box.replaceChildren(el("p", "No node has started yet."));
      return;
    }
    const now = Date.now();
    const t0 = Date.parse(started[0][1].startedAt);
    const t1 = Math.max(...started.map(([, n]) => (n.finishedAt ? Date.parse(n.finishedAt) : now)), t0 + 1000);
    const span = t1 - t0;
    const rows = started.slice(0, TIMELINE_MAX).map(([name, n]) => {
      const row = el("div", null, "tl-row");
      row.dataset.name = name;
      const label = el("span", n.attempts > 1 ? `${name} ×${n.attempts}` : name, "tl-name");
      label.title = name;
      const track = el("div", null, "tl-track");
      const start = Date.parse(n.startedAt);
      const end = n.finishedAt ? Date.parse(n.finishedAt) : now;
      const bar = el("div", null, `tl-bar phase-${n.phase}`);
      bar.style.left = `${(100 * (start - t0)) / span}%`;
      bar.style.width = `${(100 * (end - start)) / span}%`;
      bar.title = `${n.phase}, ${duration((end - start) / 1000)}`;
      track.append(bar);
      if (n.attempts > 1 && n.attemptStartedAt) {
        const mark = el("div", null, "tl-attempt");
        mark.style.left = `${(100 * (Date.parse(n.attemptStartedAt) - t0)) / span}%`;
        mark.title = `attempt ${n.attempts} started`;
        track.append(mark);
      }
      row.append(label, track);
      row.addEventListener("click", () => openPanel(name));
      return row;
    });
    const head = el("p", `${started.length} nodes started over ${duration(span / 1000)}` + (started.length > TIMELINE_MAX ? ` (the first ${TIMELINE_MAX} shown)` : ""));
    box.replaceChildren(head, ...rows);
  }

  // ---------------------------------------------------------------- actions

  async function act(action, node) {
    const wf = state.wf;
    const message = action === "reject" || action === "approve" ? $("p-message").value : "";
    const what = node ? `${action} node ${node} of workflow ${wf.namespace}/${wf.name}` : `${action} workflow ${wf.namespace}/${wf.name}`;
    if (!window.confirm(`${what}?`)) return;
    const response = await fetch(`/api/workflows/${api(wf.namespace)}/${api(wf.name)}/actions/${api(action)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Dagwright-Token": TOKEN },
      body: JSON.stringify({ node, message }),
    });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.ok) banner(`${what}: requested`, "info");
    else banner(response.status === 403 && !answer.error.startsWith("not allowed") ? `refused (403): ${answer.error}` : answer.error);
  }

  // ---------------------------------------------------------------- start

  async function start() {
    setupPanZoom();
    for (const button of document.querySelectorAll("#wf-actions button")) {
      button.addEventListener("click", () => act(button.dataset.action, null));
    }
    for (const button of document.querySelectorAll("#p-approval button")) {
      button.addEventListener("click", () => act(button.dataset.action, state.selected));
    }
    $("p-close").addEventListener("click", () => {
      const previous = state.selected;
      state.selected = null;
      closeLogs();
      $("panel").hidden = true;
      if (!view.touched && state.wf && state.wf.positions) fit(state.wf.positions);
      if (previous) state.dirty.add(previous);
      schedule();
    });
    $("p-attempt").addEventListener("change", () => startLogs(state.selected, Number($("p-attempt").value)));
    for (const button of document.querySelectorAll("#tabs button")) {
      button.addEventListener("click", () => {
        for (const other of document.querySelectorAll("#tabs button")) other.classList.toggle("active", other === button);
        $("graph").hidden = button.dataset.tab !== "graph";
        $("timeline").hidden = button.dataset.tab !== "timeline";
        if (button.dataset.tab === "timeline") renderTimeline();
      });
    }
    let typing = 0;
    $("f-namespace").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(route, 400);
    });
    for (const id of ["f-phase", "f-labels", "f-template"]) $(id).addEventListener("input", renderList);
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    setInterval(() => {
      for (const cell of document.querySelectorAll("td[data-created]")) cell.textContent = age(cell.dataset.created);
    }, 5000);
    // A workflow page opens without waiting for this (its actions show once it is here); the list needs the
    // default namespace first.
    infoReady = loadInfo();
    window.addEventListener("hashchange", route);
    route();
  }

  let infoReady = null;
  async function loadInfo() {
    try {
      const response = await fetch("/api/info");
      const info = await response.json();
      if (!response.ok) banner(info.error);
      else state.info = info;
    } catch (error) {
      banner(`cannot reach the dagwright UI server: ${error}`);
    }
    $("source").textContent = state.info.label || "";
    $("f-namespace").value = state.info.namespace || "";
    if (state.wf && state.wf.head) renderHead();
  }

  start();
})();
