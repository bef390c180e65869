// The explorer page's own code (scripts/tsne_atlas/explorer.py inlines it): runs, colour-by, legend,
// cluster names on the map, density contours, search, selection export and make-up, hover card and the
// neighbours panel around the Bokeh plot, and a second plot beside it on "compare", linked to the first.
//
// Two maps ("panels", side 0 left and 1 right; the right one only while comparing): every run lists the
// same images in the same order, so image i is row i of either map's points; a hover in one rings the
// image in the other, a click marks it in both, a selection in either is the other's too.
//
// Every user string (paths, labels, metadata, predictions, the search box) is only ever set as
// textContent or as an attribute value, never parsed as markup.
(() => {
  "use strict";
  const DATA = JSON.parse(document.getElementById("tsne-atlas-data").textContent);
  const N = DATA.n;
  const T = DATA.thumbs;
  const PER_ATLAS = T.columns * T.columns;
  const MISSING = "#bbbbbb";
  const COMPARE_SUFFIX = "-2"; // the right map's model names end in it (explorer.py's COMPARE_SUFFIX)

  // Base64 arrays are decoded once, when first needed: at 100,000 images and many runs most are never.
  const decoded = new Map();
  function decode(text, Type) {
    if (decoded.has(text)) return decoded.get(text);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const array = new Type(bytes.buffer);
    decoded.set(text, array);
    return array;
  }

  const labelCodes = decode(DATA.label_codes, Int32Array);
  const label = (i) => DATA.classes[labelCodes[i]];
  const state = {
    run: 0, // the left map's run (the only map's unless comparing)
    compare: -1, // the right map's run; -1: one map
    colouring: 0,
    query: "",
    matches: [],
    focus: -1,
    focusSide: 0, // the map whose feature set and run the neighbours panel lists for the clicked image
    hovered: -1,
    hoveredSide: 0,
    linked: -1, // the image ringed in the other map: the one hovered in this
    names: true, // the clusters' names on the map ("cluster names")
    density: false, // the density contours ("density")
    placed: [], // the names drawn on the left map: {number, text, left, top, width, height} in frame pixels
  };
  let models = null; // the left map's Bokeh models, once the document is up (panels[0].models)
  // Per map: its side, Bokeh models, the legend codes it hides, and the names it drew.
  const panels = [0, 1].map((side) => ({ side, models: null, hidden: new Set(), placed: [] }));
  const comparing = () => state.compare >= 0;
  const shown = () => (comparing() ? panels : panels.slice(0, 1));

  const el = (id) => document.getElementById(id);
  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const runOf = (panel) => DATA.runs[panel.side ? state.compare : state.run];
  const run = () => runOf(panels[0]);
  const setOf = (panel) => DATA.sets[runOf(panel).set];
  const coords = (r = run()) => [decode(r.x, Float32Array), decode(r.y, Float32Array)];
  const sideName = (panel) => (panel.side ? "right" : "left");
  // The feature sets of the maps on show, left first, each once.
  const shownSets = () => Array.from(new Set(shown().map((panel) => runOf(panel).set)));
  const fmt = (value) => (Number.isFinite(value) ? Number(value.toPrecision(4)).toString() : "n/a");

  // --- thumbnails: cells of the JPEG atlases, one CSS class per atlas so a URL is written once ---
  function atlasStyles() {
    const style = document.createElement("style");
    style.textContent = T.atlases.map((url, a) => `.atlas-${a} { background-image: url("${url}"); }`).join("\n");
    document.head.appendChild(style);
  }
  function thumb(i, size = T.cell) {
    const atlas = Math.floor(i / PER_ATLAS);
    const cell = i % PER_ATLAS;
    const scale = size / T.cell;
    const node = make("div", `thumb atlas-${atlas}`);
    node.style.width = node.style.height = `${size}px`;
    node.style.backgroundSize = `${T.columns * size}px auto`;
    node.style.backgroundPosition = `${-(cell % T.columns) * T.cell * scale}px ${-Math.floor(cell / T.columns) * T.cell * scale}px`;
    node.dataset.index = String(i);
    node.dataset.atlas = String(atlas);
    node.dataset.cell = String(cell);
    return node;
  }

  // --- per-image fields: label, cluster and predicted class of the shown maps' feature sets (named by
  // set when the two maps show two), metadata ---
  function fieldRows(i) {
    const rows = [["class", label(i)]];
    const sets = shownSets();
    const name = (field, s) => (sets.length > 1 ? `${field} (${DATA.sets[s].id})` : field);
    for (const s of sets) {
      const cluster = clusterText(i, s);
      if (cluster !== null) rows.push([name("cluster", s), cluster]);
    }
    for (const s of sets) {
      const predicted = predictedText(i, s);
      if (predicted !== null) rows.push([name("predicted", s), predicted]);
    }
    DATA.metadata.columns.forEach((column, c) => rows.push([column, DATA.metadata.values[c][i]]));
    return rows;
  }
  // The top-1 text ("tabby (83%)") of feature set s, null when it has no predictions.
  function predictedText(i, s) {
    const texts = DATA.predicted[s];
    return texts ? texts[i] : null;
  }
  // The cluster ("3: cow / sheep") of feature set s, null when it has none.
  const CLUSTERS = DATA.colourings.find((option) => option.key === "cluster");
  function setClusters(s) {
    return CLUSTERS ? CLUSTERS.sets[s] : null;
  }
  function clusterCode(i, s) {
    const clusters = setClusters(s);
    return clusters ? decode(clusters.codes, Int32Array)[i] : -1;
  }
  function clusterText(i, s) {
    const code = clusterCode(i, s);
    return code >= 0 ? setClusters(s).categories[code] : null;
  }
  function fields(i) {
    const box = make("div", "fields");
    box.appendChild(make("div", "path", DATA.paths[i]));
    for (const [name, value] of fieldRows(i)) {
      const row = make("div", "field");
      row.appendChild(make("b", "", `${name}: `));
      row.appendChild(document.createTextNode(value));
      box.appendChild(row);
    }
    return box;
  }

  // --- colour by: each map by the current colouring, a per-set one (cluster, predicted class) in its own
  // run's feature set ---
  function colouringOf(panel) {
    const option = DATA.colourings[state.colouring];
    return option.per_set ? option.sets[runOf(panel).set] : option;
  }
  function colourValues(colouring) {
    if (!colouring) return null;
    if (colouring.kind === "categorical") return decode(colouring.codes, Int32Array);
    return decode(colouring.values, Float32Array);
  }
  function paint(panel) {
    const colouring = colouringOf(panel);
    const values = colourValues(colouring);
    const field = new Float32Array(N);
    const m = panel.models;
    if (!colouring) {
      field.fill(NaN);
      m.mapper.setv({ palette: [MISSING], low: 0, high: 1 });
    } else if (colouring.kind === "categorical") {
      for (let i = 0; i < N; i++) field[i] = values[i] + 0.5; // the middle of its palette bin
      m.mapper.setv({ palette: colouring.colours, low: 0, high: colouring.colours.length });
    } else {
      field.set(values);
      m.mapper.setv({ palette: colouring.colours, low: colouring.low, high: colouring.high });
    }
    panel.hidden.clear();
    m.source.data.c = field;
    m.source.change.emit();
    updateVisible(panel);
  }
  function applyColour() {
    shown().forEach(paint);
    renderLegend();
  }
  const colouringByCluster = () => DATA.colourings[state.colouring] === CLUSTERS;
  function visible(panel) {
    const colouring = colouringOf(panel);
    if (!panel.hidden.size || !colouring || colouring.kind !== "categorical") return null;
    const codes = colourValues(colouring);
    return Array.from(codes, (code) => !panel.hidden.has(code));
  }
  function updateVisible(panel) {
    const mask = visible(panel);
    panel.models.filter.booleans = mask; // null shows every point
    panel.models.source.change.emit();
    if (!panel.side) el("legend").dataset.shown = String(mask ? mask.filter(Boolean).length : N);
    scheduleNames(); // a hidden cluster's name goes with its points
  }
  // One legend per distinct colouring of the maps on show (two when the maps show two feature sets and
  // the colouring is per set); an entry hides and shows its points in every map that colouring paints.
  function renderLegend() {
    const legend = el("legend");
    const option = DATA.colourings[state.colouring];
    legend.replaceChildren(make("h2", "", option.name));
    if (option.hint) legend.appendChild(make("p", "hint", option.hint));
    const groups = [];
    for (const panel of shown()) {
      const colouring = colouringOf(panel);
      const group = groups.find((g) => colouring && g.colouring === colouring);
      if (group) group.panels.push(panel);
      else groups.push({ colouring, panels: [panel] });
    }
    for (const { colouring, panels: painted } of groups) {
      if (groups.length > 1) {
        const where = painted.map(sideName).join(" and ");
        legend.appendChild(make("h3", "", `${setOf(painted[0]).id} (${where} map)`));
      }
      legendEntries(legend, colouring, painted);
    }
  }
  function legendEntries(legend, colouring, painted) {
    if (!colouring) {
      legend.appendChild(make("p", "hint", "n/a for this run's feature set"));
      return;
    }
    const values = colourValues(colouring);
    if (colouring.kind === "categorical") {
      const counts = new Array(colouring.categories.length).fill(0);
      for (let i = 0; i < N; i++) counts[values[i]]++;
      legend.appendChild(make("p", "hint", "click an entry to hide or show its points"));
      const entries = make("div", "entries");
      entries.dataset.sides = painted.map((panel) => panel.side).join(",");
      legend.appendChild(entries);
      colouring.categories.forEach((name, code) => {
        const entry = make("button", "entry");
        entry.type = "button";
        entry.dataset.code = String(code);
        const swatch = make("span", "swatch");
        swatch.style.background = colouring.colours[code];
        entry.append(swatch, make("span", "name", name), make("span", "n", counts[code].toLocaleString("en")));
        entry.addEventListener("click", () => {
          const hide = !painted[0].hidden.has(code);
          for (const panel of painted) {
            if (hide) panel.hidden.add(code);
            else panel.hidden.delete(code);
            updateVisible(panel);
          }
          entry.classList.toggle("hidden", hide);
        });
        entries.appendChild(entry);
      });
    } else {
      const bar = make("div", "gradient");
      const stops = colouring.colours.filter((_, j) => j % 32 === 0).concat(colouring.colours.slice(-1));
      bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
      const range = make("div", "range");
      range.append(make("span", "", fmt(colouring.low)), make("span", "", fmt(colouring.high)));
      let missing = 0;
      for (let i = 0; i < N; i++) if (!Number.isFinite(values[i])) missing++;
      legend.append(bar, range);
      if (missing) legend.appendChild(make("p", "hint", `${missing.toLocaleString("en")} images n/a (grey)`));
    }
  }

  // --- runs: the left map's (showRun) and the right map's (showCompare; -1 closes it) ---
  function showRun(k) {
    state.run = k;
    loadRun(panels[0]);
    if (DATA.colourings[state.colouring].per_set) applyColour();
    else if (comparing()) renderLegend(); // its heading names the sets
    renderMakeup();
    saveState();
  }
  function showCompare(k) {
    const was = comparing();
    state.compare = k;
    el("compare-plot").hidden = !comparing();
    el("compare-toggle").checked = comparing();
    const menu = el("compare-select");
    menu.disabled = !comparing();
    if (comparing()) menu.value = String(k);
    const right = panels[1];
    clearLinked();
    if (comparing()) {
      loadRun(right);
      right.models.source.selected.indices = Array.from(models.source.selected.indices);
    } else {
      right.models.source.selected.indices = [];
      state.focusSide = 0;
      if (state.focus >= 0) focus(state.focus, 0);
    }
    // Opened or closed, or another set's per-set colouring: the legend and what it hides start afresh.
    if (was !== comparing() || DATA.colourings[state.colouring].per_set) {
      panels.forEach((panel) => panel.hidden.clear());
      applyColour();
    }
    renderMakeup();
    saveState();
  }
  // A map shows its run: points, contours, names, matches, the clicked image, the view fitted to the run
  // (its colours: paint).
  function loadRun(panel) {
    const m = panel.models;
    const [x, y] = coords(runOf(panel));
    m.source.data.x = x;
    m.source.data.y = y;
    if (m.source.data.c.length !== N) m.source.data.c = new Float32Array(N).fill(NaN); // the right map's first
    m.source.change.emit();
    m.plot.title.text = runOf(panel).title;
    showDensity(panel);
    scheduleNames();
    showMatches(panel);
    if (state.focus >= 0) focus(state.focus, state.focusSide);
    m.plot.reset.emit(); // re-fit the ranges to the new layout
  }

  // --- cluster names on the map: at each named cluster's anchor (its member nearest the cluster's median,
  // computed per run by explorer.py), in screen pixels over the plot, so they keep their size when zoomed
  // and move with the map. Largest cluster first; a name whose box would overlap one already drawn tries
  // just above and below its anchor, else is left out (zoom in to see it). ---
  let namesFrame = 0;
  function scheduleNames() {
    if (!models || namesFrame) return;
    namesFrame = requestAnimationFrame(() => {
      namesFrame = 0;
      drawNames();
    });
  }
  function drawNames() {
    panels.forEach(drawPanelNames);
    state.placed = panels[0].placed;
  }
  function drawPanelNames(panel) {
    const layer = el(`map-names${panel.side ? COMPARE_SUFFIX : ""}`);
    panel.placed = [];
    layer.replaceChildren();
    const on = panel.side === 0 || comparing();
    const named = on && setOf(panel).clusters;
    const anchors = on && runOf(panel).anchors;
    layer.hidden = !(state.names && named && anchors);
    if (layer.hidden) return;
    const view = pointsView(panel);
    const frame = view.plot_view.frame.bbox;
    const canvas = canvasRect(panel);
    const box = layer.parentElement.getBoundingClientRect();
    Object.assign(layer.style, {
      left: `${canvas.left - box.left + frame.left}px`,
      top: `${canvas.top - box.top + frame.top}px`,
      width: `${frame.width}px`,
      height: `${frame.height}px`,
    });
    const xs = view.coordinates.x_scale;
    const ys = view.coordinates.y_scale;
    const where = decode(anchors, Float32Array);
    const hidden = colouringByCluster() ? panel.hidden : new Set();
    named.numbers.forEach((number, j) => {
      if (hidden.has(number)) return;
      const x = xs.compute(where[2 * j]) - frame.left;
      const y = ys.compute(where[2 * j + 1]) - frame.top;
      if (!(x >= 0 && x <= frame.width && y >= 0 && y <= frame.height)) return;
      const name = make("span", "map-name", named.texts[j]);
      name.dataset.cluster = String(number);
      layer.appendChild(name);
      const width = name.offsetWidth;
      const height = name.offsetHeight;
      for (const dy of [0, -height, height]) {
        const spot = { number, text: named.texts[j], left: x - width / 2, top: y + dy - height / 2, width, height };
        const inside = spot.left >= 0 && spot.top >= 0 && spot.left + width <= frame.width && spot.top + height <= frame.height;
        const clear = panel.placed.every(
          (other) =>
            spot.left >= other.left + other.width ||
            other.left >= spot.left + width ||
            spot.top >= other.top + other.height ||
            other.top >= spot.top + height,
        );
        if (inside && clear) {
          name.style.left = `${spot.left}px`;
          name.style.top = `${spot.top}px`;
          panel.placed.push(spot);
          return;
        }
      }
      name.remove();
    });
  }

  // --- density contours of the run on show (explorer.py's density_lines: int8 steps on a lattice) ---
  function showDensity(panel) {
    const m = panel.models;
    m.density.visible = state.density;
    if (!state.density) return;
    const contours = runOf(panel).density;
    const starts = decode(contours.starts, Uint16Array);
    const lengths = decode(contours.lengths, Int32Array);
    const deltas = decode(contours.deltas, Int8Array);
    const [x0, y0] = contours.origin;
    const [dx, dy] = contours.step;
    const xs = [];
    const ys = [];
    let at = 0;
    lengths.forEach((length, line) => {
      const x = new Float64Array(length + 1);
      const y = new Float64Array(length + 1);
      let qx = starts[2 * line];
      let qy = starts[2 * line + 1];
      for (let v = 0; v <= length; v++) {
        if (v > 0) {
          qx += deltas[2 * at];
          qy += deltas[2 * at + 1];
          at++;
        }
        x[v] = x0 + dx * qx;
        y[v] = y0 + dy * qy;
      }
      xs.push(x);
      ys.push(y);
    });
    m.densitySource.data = { xs, ys };
  }

  // --- hover card, and the hovered image ringed in the other map ---
  function hover(cbData, side = 0) {
    if (!models) return; // BokehJS may hover before start() has found its models
    const card = el("hover-card");
    const indices = cbData ? cbData.index.indices : [];
    if (!indices.length) {
      if (side !== state.hoveredSide) return; // the other map's pointer left: this one's card stays
      card.hidden = true;
      state.hovered = -1;
      clearLinked();
      return;
    }
    const i = indices[0];
    if (i !== state.hovered || side !== state.hoveredSide) {
      state.hovered = i;
      state.hoveredSide = side;
      card.replaceChildren(thumb(i), fields(i));
      if (indices.length > 1) card.appendChild(make("div", "hint", `+${indices.length - 1} more under the pointer`));
      if (comparing()) ringLinked(i, panels[1 - side]);
    }
    card.hidden = false;
    const rect = canvasRect(panels[side]);
    const left = rect.left + cbData.geometry.sx + 16;
    const top = rect.top + cbData.geometry.sy + 16;
    const width = card.offsetWidth;
    const height = card.offsetHeight;
    card.style.left = `${left + width > window.innerWidth ? Math.max(0, left - width - 32) : left}px`;
    card.style.top = `${top + height > window.innerHeight ? Math.max(0, top - height - 32) : top}px`;
  }
  function ringLinked(i, panel) {
    const [x, y] = coords(runOf(panel));
    state.linked = i;
    panel.models.linked.data = { x: [x[i]], y: [y[i]] };
  }
  function clearLinked() {
    state.linked = -1;
    for (const panel of panels) if (panel.models) panel.models.linked.data = { x: [], y: [] };
  }
  function canvasRect(panel = panels[0]) {
    return Bokeh.index.find_one(panel.models.plot).canvas_view.el.getBoundingClientRect();
  }

  // --- click: the image's neighbours in feature space and on the map ---
  function pointsView(panel = panels[0]) {
    return Bokeh.index.find_one(panel.models.points);
  }
  function nearestOnScreen(panel, sx, sy, radius) {
    const view = pointsView(panel);
    const xs = view.coordinates.x_scale;
    const ys = view.coordinates.y_scale;
    const [x, y] = coords(runOf(panel));
    const mask = visible(panel);
    let best = -1;
    let bestDistance = radius * radius;
    for (let i = 0; i < N; i++) {
      if (mask && !mask[i]) continue;
      const dx = xs.compute(x[i]) - sx;
      const dy = ys.compute(y[i]) - sy;
      const d = dx * dx + dy * dy;
      if (d <= bestDistance) {
        best = i;
        bestDistance = d;
      }
    }
    return best;
  }
  function tap(event, side = 0) {
    if (!models) return;
    // The point under the pointer, as Bokeh's own hit test found it for the hover; else the nearest.
    const hovered = state.hovered >= 0 && state.hoveredSide === side;
    const i = hovered ? state.hovered : nearestOnScreen(panels[side], event.sx, event.sy, 12);
    if (i >= 0) focus(i, side);
  }
  function featureNeighbours(i, s) {
    const all = decode(s.neighbours, Int32Array);
    const distances = decode(s.distances, Float32Array);
    const out = [];
    for (let j = 0; j < s.k; j++) {
      const n = all[i * s.k + j];
      if (n >= 0) out.push([n, distances[i * s.k + j]]);
    }
    return out;
  }
  function mapNeighbours(i, k, r) {
    const [x, y] = coords(r);
    const best = []; // [index, squared distance], ascending, at most k
    for (let j = 0; j < N; j++) {
      if (j === i) continue;
      const dx = x[j] - x[i];
      const dy = y[j] - y[i];
      const d = dx * dx + dy * dy;
      if (best.length === k && d >= best[k - 1][1]) continue;
      let at = best.length;
      while (at > 0 && best[at - 1][1] > d) at--;
      best.splice(at, 0, [j, d]);
      if (best.length > k) best.pop();
    }
    return best.map(([j, d]) => [j, Math.sqrt(d)]);
  }
  function imageUrl(i) {
    return DATA.image_base + DATA.paths[i].split("/").map(encodeURIComponent).join("/");
  }
  function neighbourList(title, list, others, s, side) {
    const box = make("div", "list");
    box.appendChild(make("h2", "", title));
    for (const [j, distance] of list) {
      const row = make("div", `neighbour${others.has(j) ? " shared" : ""}`);
      row.dataset.index = String(j);
      const text = make("div", "text");
      const first = make("div", "", label(j));
      if (others.has(j)) first.appendChild(make("span", "both", " ●"));
      text.appendChild(first);
      const cluster = clusterCode(j, s);
      text.appendChild(make("div", "distance", `distance ${fmt(distance)}${cluster >= 0 ? ` · cluster ${cluster}` : ""}`));
      row.title = DATA.paths[j];
      row.append(thumb(j, 48), text);
      row.addEventListener("click", () => focus(j, side));
      box.appendChild(row);
    }
    return box;
  }
  // Image i clicked in the map of ``side``: the panel lists its neighbours in that map's feature set and
  // on that map; every map shown marks it and draws lines to those feature-space neighbours.
  function focus(i, side = state.focusSide) {
    if (!comparing()) side = 0;
    state.focus = i;
    state.focusSide = side;
    const clicked = panels[side];
    const s = setOf(clicked);
    const features = featureNeighbours(i, s);
    const map = mapNeighbours(i, s.k, runOf(clicked));
    const inMap = new Set(map.map(([j]) => j));
    const inFeatures = new Set(features.map(([j]) => j));
    const kept = features.filter(([j]) => inMap.has(j)).length;
    for (const p of shown()) {
      const [x, y] = coords(runOf(p));
      p.models.focus.data = { x: [x[i]], y: [y[i]] };
      p.models.links.data = {
        x0: features.map(() => x[i]),
        y0: features.map(() => y[i]),
        x1: features.map(([j]) => x[j]),
        y1: features.map(([j]) => y[j]),
      };
    }
    const panel = el("neighbours");
    const head = make("div", "focus-head");
    head.append(thumb(i, Math.max(T.cell, 96)), fields(i));
    const open = make("a", "open", "open the image");
    open.href = imageUrl(i);
    open.target = "_blank";
    open.rel = "noopener";
    head.querySelector(".fields").appendChild(open);
    const where = comparing() ? ` ${sideName(clicked)}` : "";
    const summary = make(
      "p",
      "summary",
      `${kept} of its ${features.length} nearest in feature space are among its ${map.length} nearest on the${where} map ` +
        `(● in both); lines on the map${comparing() ? "s" : ""} go to its feature-space neighbours.`,
    );
    const columns = make("div", "columns");
    columns.append(
      neighbourList(`feature space (${s.id})`, features, inMap, runOf(clicked).set, side),
      neighbourList(`on the${where} map`, map, inFeatures, runOf(clicked).set, side),
    );
    panel.replaceChildren(head, summary, columns);
    panel.dataset.index = String(i);
    panel.dataset.side = String(side);
    saveState();
  }

  // --- search ---
  let lowerPaths = null;
  function search(query) {
    const q = query.trim().toLowerCase();
    state.query = q;
    state.matches = [];
    if (q) {
      lowerPaths = lowerPaths || DATA.paths.map((p) => p.toLowerCase());
      const classHit = DATA.classes.map((c) => c.toLowerCase().includes(q));
      for (let i = 0; i < N; i++) if (classHit[labelCodes[i]] || lowerPaths[i].includes(q)) state.matches.push(i);
    }
    el("search-count").textContent = q ? `${state.matches.length.toLocaleString("en")} of ${N.toLocaleString("en")} match` : "";
    el("select-matches").disabled = state.matches.length === 0;
    shown().forEach(showMatches);
    saveState();
    return state.matches.length;
  }
  function showMatches(panel) {
    const [x, y] = coords(runOf(panel));
    panel.models.matches.data = { x: state.matches.map((i) => x[i]), y: state.matches.map((i) => y[i]) };
  }

  // --- selection (the same images in both maps), its cluster make-up and its CSV ---
  function selected() {
    return Array.from(models.source.selected.indices).sort((a, b) => a - b);
  }
  let linking = false; // while one map's selection is copied to the other
  function selectionChanged(side = 0) {
    if (!models || linking) return;
    if (comparing()) {
      const from = Array.from(panels[side].models.source.selected.indices);
      const other = panels[1 - side].models.source.selected;
      if (from.length !== other.indices.length || from.some((i, j) => other.indices[j] !== i)) {
        linking = true;
        try {
          other.indices = from;
        } finally {
          linking = false;
        }
      }
    }
    const n = selected().length;
    el("selection-count").textContent = n ? `${n.toLocaleString("en")} selected` : "";
    el("export-selection").disabled = n === 0;
    el("clear-selection").disabled = n === 0;
    renderMakeup();
  }
  // The selection's clusters in feature set s: [{code, count}], most images first (then by number); null
  // when the set has no clusters.
  const MAKEUP_SHOWN = 4; // clusters listed per set; the rest are summed in one line
  function makeupCounts(indices, s) {
    const clusters = setClusters(s);
    if (!clusters) return null;
    const codes = decode(clusters.codes, Int32Array);
    const counts = new Map();
    for (const i of indices) counts.set(codes[i], (counts.get(codes[i]) || 0) + 1);
    return Array.from(counts, ([code, count]) => ({ code, count })).sort((a, b) => b.count - a.count || a.code - b.code);
  }
  function makeupRow(className, swatchColour, name, count, n) {
    const row = make("div", className);
    row.dataset.count = String(count);
    const swatch = make("span", "swatch");
    if (swatchColour) swatch.style.background = swatchColour;
    row.append(swatch, make("span", "name", name), make("span", "n", `${Math.round((100 * count) / n)}% · ${count.toLocaleString("en")}`));
    return row;
  }
  function renderMakeup() {
    const box = el("makeup");
    const indices = selected();
    box.hidden = !CLUSTERS || !indices.length;
    if (box.hidden) {
      box.replaceChildren();
      return;
    }
    const n = indices.length;
    box.replaceChildren(
      make("h2", "", "selection by cluster"),
      make("p", "hint", `where the ${n.toLocaleString("en")} selected images fall in each feature set's clusters`),
    );
    for (const s of shownSets()) {
      const block = make("div", "makeup-set");
      block.dataset.set = String(s);
      const where = shown().filter((panel) => runOf(panel).set === s).map(sideName);
      block.appendChild(make("h3", "", DATA.sets[s].id + (comparing() ? ` (${where.join(" and ")} map)` : "")));
      box.appendChild(block);
      const counts = makeupCounts(indices, s);
      if (!counts) {
        block.appendChild(make("p", "hint", "no clusters for this feature set"));
        continue;
      }
      const clusters = setClusters(s);
      for (const { code, count } of counts.slice(0, MAKEUP_SHOWN)) {
        const row = makeupRow("share", clusters.colours[code], clusters.categories[code], count, n);
        row.dataset.cluster = String(code);
        block.appendChild(row);
      }
      const rest = counts.slice(MAKEUP_SHOWN);
      if (rest.length) {
        const count = rest.reduce((sum, entry) => sum + entry.count, 0);
        block.appendChild(makeupRow("share rest", null, `${rest.length} more clusters`, count, n));
      }
    }
  }
  function csvField(value) {
    const text = String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }
  function selectionCsv() {
    const [x, y] = coords();
    const predicted = DATA.predicted[run().set];
    const header = ["path", "label", "x", "y"].concat(predicted ? ["predicted"] : [], DATA.metadata.columns);
    const lines = [header.map(csvField).join(",")];
    for (const i of selected()) {
      const row = [DATA.paths[i], label(i), x[i].toPrecision(7), y[i].toPrecision(7)];
      if (predicted) row.push(predicted[i]);
      DATA.metadata.values.forEach((values) => row.push(values[i]));
      lines.push(row.map(csvField).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }
  function downloadSelection() {
    const blob = new Blob([selectionCsv()], { type: "text/csv;charset=utf-8" });
    const link = make("a");
    link.href = URL.createObjectURL(blob);
    link.download = "tsne-atlas-selection.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // --- start, once BokehJS has built the plot ---
  function controls() {
    const runSelect = el("run-select");
    DATA.runs.forEach((r, k) => runSelect.appendChild(Object.assign(make("option", "", r.label), { value: String(k) })));
    runSelect.addEventListener("change", () => showRun(Number(runSelect.value)));
    const colourSelect = el("colour-select");
    DATA.colourings.forEach((c, k) => colourSelect.appendChild(Object.assign(make("option", "", c.name), { value: String(k) })));
    colourSelect.addEventListener("change", () => {
      state.colouring = Number(colourSelect.value);
      applyColour();
      saveState();
    });
    let timer = null;
    el("search").addEventListener("input", (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => search(event.target.value), 120);
    });
    const compareSelect = el("compare-select");
    DATA.runs.forEach((r, k) => compareSelect.appendChild(Object.assign(make("option", "", r.label), { value: String(k) })));
    compareSelect.addEventListener("change", () => showCompare(Number(compareSelect.value)));
    el("compare-toggle").addEventListener("change", (event) => showCompare(event.target.checked ? run().partner : -1));
    el("select-matches").addEventListener("click", () => {
      models.source.selected.indices = state.matches.slice();
    });
    el("clear-selection").addEventListener("click", () => {
      models.source.selected.indices = [];
    });
    el("export-selection").addEventListener("click", downloadSelection);
    const names = el("names-toggle");
    names.disabled = !CLUSTERS;
    names.checked = state.names;
    names.addEventListener("change", () => {
      state.names = names.checked;
      scheduleNames();
      saveState();
    });
    const density = el("density-toggle");
    density.addEventListener("change", () => {
      state.density = density.checked;
      shown().forEach(showDensity);
      saveState();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && event.target === document.body) unfocus();
    });
  }

  // --- the view in the page's address (#run=2&compare=5&colour=1&find=zebra&image=zebra/z_01.png): a
  // link to it opens the same runs, colouring, search and clicked image (``panel=right`` when clicked in
  // the right map). Images are named by path, not by index.
  function saveState() {
    const params = new URLSearchParams();
    if (state.run) params.set("run", String(state.run));
    if (comparing()) params.set("compare", String(state.compare));
    if (state.colouring) params.set("colour", String(state.colouring));
    if (state.query) params.set("find", state.query);
    if (state.focus >= 0) params.set("image", DATA.paths[state.focus]);
    if (state.focus >= 0 && state.focusSide) params.set("panel", "right");
    if (!state.names) params.set("names", "0");
    if (state.density) params.set("density", "1");
    const hash = params.toString();
    if (hash === location.hash.slice(1)) return;
    try {
      history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
    } catch (error) {
      // Some browsers refuse history changes on file:// pages: the view still works, unsaved.
    }
  }
  const runIndex = (text, least) => {
    const k = text === null ? NaN : Number(text);
    return Number.isInteger(k) && k >= least && k < DATA.runs.length ? k : -1;
  };
  function restoreState() {
    const params = new URLSearchParams(location.hash.slice(1));
    const run = runIndex(params.get("run"), 1);
    if (run > 0) {
      el("run-select").value = String(run);
      showRun(run);
    }
    const compare = runIndex(params.get("compare"), 0);
    if (compare >= 0) showCompare(compare);
    const colour = Number(params.get("colour"));
    if (Number.isInteger(colour) && colour > 0 && colour < DATA.colourings.length) {
      el("colour-select").value = String(colour);
      state.colouring = colour;
      applyColour();
    }
    const query = params.get("find");
    if (query) {
      el("search").value = query;
      search(query);
    }
    const image = DATA.paths.indexOf(params.get("image"));
    if (image >= 0) focus(image, params.get("panel") === "right" ? 1 : 0);
    if (params.get("names") === "0") {
      el("names-toggle").checked = state.names = false;
      scheduleNames();
    }
    if (params.get("density") === "1") {
      el("density-toggle").checked = state.density = true;
      shown().forEach(showDensity);
    }
  }
  function unfocus() {
    state.focus = -1;
    state.focusSide = 0;
    for (const panel of panels) {
      panel.models.focus.data = { x: [], y: [] };
      panel.models.links.data = { x0: [], y0: [], x1: [], y1: [] };
    }
    const panel = el("neighbours");
    panel.replaceChildren(make("p", "hint", "Click a point to see its nearest neighbours in feature space beside its nearest on the map."));
    delete panel.dataset.index;
    delete panel.dataset.side;
    saveState();
  }
  // The Bokeh models of one map (side 1's names end in COMPARE_SUFFIX), null until BokehJS has its views.
  function mapModels(doc, side) {
    const suffix = side ? COMPARE_SUFFIX : "";
    const named = (name) => doc.get_model_by_name(name + suffix);
    const points = doc && named("points");
    if (!points || !Bokeh.index.find_one(points)) return null;
    return {
      plot: named("plot"),
      points,
      source: points.data_source,
      filter: points.view.filter,
      mapper: named("colour-mapper"),
      matches: named("matches-source"),
      focus: named("focus-source"),
      links: named("neighbour-links-source"),
      linked: named("linked-source"),
      density: named("density"),
      densitySource: named("density-source"),
    };
  }
  function start() {
    const doc = window.Bokeh && Bokeh.documents[0];
    const found = doc ? panels.map((panel) => mapModels(doc, panel.side)) : [null];
    if (found.some((m) => m === null)) {
      setTimeout(start, 25);
      return;
    }
    panels.forEach((panel, side) => {
      panel.models = found[side];
      // Names follow every pan, zoom, reset and resize, drawn in the frame after the change.
      for (const range of [panel.models.plot.x_range, panel.models.plot.y_range]) range.connect(range.change, scheduleNames);
    });
    models = panels[0].models;
    const observer = new ResizeObserver(scheduleNames);
    document.querySelectorAll(".map-names").forEach((layer) => observer.observe(layer.parentElement));
    atlasStyles();
    controls();
    // The plot already shows the first colouring (the label): draw its legend, not all points again.
    renderLegend();
    restoreState();
    scheduleNames();
    window.tsneAtlas.ready = true;
    document.documentElement.dataset.explorerReady = "true";
  }

  window.tsneAtlas = {
    ready: false,
    hover,
    tap,
    selectionChanged,
    focus,
    unfocus,
    search,
    selectionCsv,
    drawNames,
    showCompare,
    makeupCounts,
    panels,
    state,
    data: DATA,
  };
  start();
})();
