// The explorer page's own code (scripts/tsne_atlas/explorer.py inlines it): runs, colour-by, legend,
// cluster names on the map, density contours, search, selection export, hover card and the neighbours
// panel around the Bokeh plot.
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
    run: 0,
    colouring: 0,
    hidden: new Set(),
    query: "",
    matches: [],
    focus: -1,
    hovered: -1,
    names: true, // the clusters' names on the map ("cluster names")
    density: false, // the density contours ("density")
    placed: [], // the names drawn: {number, text, left, top, width, height} in frame pixels
  };
  let models = null; // Bokeh models, once the document is up

  const el = (id) => document.getElementById(id);
  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const run = () => DATA.runs[state.run];
  const set = () => DATA.sets[run().set];
  const coords = (r = run()) => [decode(r.x, Float32Array), decode(r.y, Float32Array)];
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

  // --- per-image fields: label, predicted class of the current run's feature set, metadata ---
  function fieldRows(i) {
    const rows = [["class", label(i)]];
    const cluster = clusterText(i);
    if (cluster !== null) rows.push(["cluster", cluster]);
    const predicted = predictedText(i);
    if (predicted !== null) rows.push(["predicted", predicted]);
    DATA.metadata.columns.forEach((column, c) => rows.push([column, DATA.metadata.values[c][i]]));
    return rows;
  }
  // The top-1 text ("tabby (83%)") of the current run's feature set, null when it has no predictions.
  function predictedText(i) {
    const texts = DATA.predicted[run().set];
    return texts ? texts[i] : null;
  }
  // The cluster ("3: cow / sheep") of the current run's feature set, null when it has none.
  const CLUSTERS = DATA.colourings.find((option) => option.key === "cluster");
  function setClusters() {
    return CLUSTERS ? CLUSTERS.sets[run().set] : null;
  }
  function clusterCode(i) {
    const clusters = setClusters();
    return clusters ? decode(clusters.codes, Int32Array)[i] : -1;
  }
  function clusterText(i) {
    const code = clusterCode(i);
    return code >= 0 ? setClusters().categories[code] : null;
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

  // --- colour by ---
  function currentColouring() {
    const option = DATA.colourings[state.colouring];
    return option.per_set ? option.sets[run().set] : option;
  }
  function colourValues(colouring) {
    if (!colouring) return null;
    if (colouring.kind === "categorical") return decode(colouring.codes, Int32Array);
    return decode(colouring.values, Float32Array);
  }
  function applyColour() {
    const colouring = currentColouring();
    const values = colourValues(colouring);
    const field = new Float32Array(N);
    const mapper = models.mapper;
    if (!colouring) {
      field.fill(NaN);
      mapper.setv({ palette: [MISSING], low: 0, high: 1 });
    } else if (colouring.kind === "categorical") {
      for (let i = 0; i < N; i++) field[i] = values[i] + 0.5; // the middle of its palette bin
      mapper.setv({ palette: colouring.colours, low: 0, high: colouring.colours.length });
    } else {
      field.set(values);
      mapper.setv({ palette: colouring.colours, low: colouring.low, high: colouring.high });
    }
    state.hidden.clear();
    models.source.data.c = field;
    models.source.change.emit();
    updateVisible();
    renderLegend(colouring, values);
  }
  const colouringByCluster = () => DATA.colourings[state.colouring] === CLUSTERS;
  function visible() {
    const colouring = currentColouring();
    if (!state.hidden.size || !colouring || colouring.kind !== "categorical") return null;
    const codes = colourValues(colouring);
    return Array.from(codes, (code) => !state.hidden.has(code));
  }
  function updateVisible() {
    const mask = visible();
    models.filter.booleans = mask; // null shows every point
    models.source.change.emit();
    const shown = mask ? mask.filter(Boolean).length : N;
    el("legend").dataset.shown = String(shown);
    scheduleNames(); // a hidden cluster's name goes with its points
  }
  function renderLegend(colouring, values) {
    const legend = el("legend");
    const option = DATA.colourings[state.colouring];
    legend.replaceChildren(make("h2", "", option.name));
    if (option.hint) legend.appendChild(make("p", "hint", option.hint));
    if (!colouring) {
      legend.appendChild(make("p", "hint", "n/a for this run's feature set"));
      return;
    }
    if (colouring.kind === "categorical") {
      const counts = new Array(colouring.categories.length).fill(0);
      for (let i = 0; i < N; i++) counts[values[i]]++;
      legend.appendChild(make("p", "hint", "click an entry to hide or show its points"));
      const entries = make("div", "entries");
      legend.appendChild(entries);
      colouring.categories.forEach((name, code) => {
        const entry = make("button", "entry");
        entry.type = "button";
        entry.dataset.code = String(code);
        const swatch = make("span", "swatch");
        swatch.style.background = colouring.colours[code];
        entry.append(swatch, make("span", "name", name), make("span", "n", counts[code].toLocaleString("en")));
        entry.addEventListener("click", () => {
          if (state.hidden.has(code)) state.hidden.delete(code);
          else state.hidden.add(code);
          entry.classList.toggle("hidden", state.hidden.has(code));
          updateVisible();
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

  // --- runs ---
  function showRun(k) {
    state.run = k;
    const [x, y] = coords();
    models.source.data.x = x;
    models.source.data.y = y;
    models.source.change.emit();
    models.plot.title.text = run().title;
    if (DATA.colourings[state.colouring].per_set) applyColour();
    showDensity();
    scheduleNames();
    showMatches();
    if (state.focus >= 0) focus(state.focus);
    models.plot.reset.emit(); // re-fit the ranges to the new layout
    saveState();
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
    const layer = el("map-names");
    const named = set().clusters;
    const anchors = run().anchors;
    state.placed = [];
    layer.replaceChildren();
    layer.hidden = !(state.names && named && anchors);
    if (layer.hidden) return;
    const view = pointsView();
    const frame = view.plot_view.frame.bbox;
    const canvas = canvasRect();
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
    const hidden = colouringByCluster() ? state.hidden : new Set();
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
        const clear = state.placed.every(
          (other) =>
            spot.left >= other.left + other.width ||
            other.left >= spot.left + width ||
            spot.top >= other.top + other.height ||
            other.top >= spot.top + height,
        );
        if (inside && clear) {
          name.style.left = `${spot.left}px`;
          name.style.top = `${spot.top}px`;
          state.placed.push(spot);
          return;
        }
      }
      name.remove();
    });
  }

  // --- density contours of the run on show (explorer.py's density_lines: int8 steps on a lattice) ---
  function showDensity() {
    models.density.visible = state.density;
    if (!state.density) return;
    const contours = run().density;
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
    models.densitySource.data = { xs, ys };
  }

  // --- hover card ---
  function hover(cbData) {
    if (!models) return; // BokehJS may hover before start() has found its models
    const card = el("hover-card");
    const indices = cbData ? cbData.index.indices : [];
    if (!indices.length) {
      card.hidden = true;
      state.hovered = -1;
      return;
    }
    const i = indices[0];
    if (i !== state.hovered) {
      state.hovered = i;
      card.replaceChildren(thumb(i), fields(i));
      if (indices.length > 1) card.appendChild(make("div", "hint", `+${indices.length - 1} more under the pointer`));
    }
    card.hidden = false;
    const rect = canvasRect();
    const left = rect.left + cbData.geometry.sx + 16;
    const top = rect.top + cbData.geometry.sy + 16;
    const width = card.offsetWidth;
    const height = card.offsetHeight;
    card.style.left = `${left + width > window.innerWidth ? Math.max(0, left - width - 32) : left}px`;
    card.style.top = `${top + height > window.innerHeight ? Math.max(0, top - height - 32) : top}px`;
  }
  function canvasRect() {
    return Bokeh.index.find_one(models.plot).canvas_view.el.getBoundingClientRect();
  }

  // --- click: the image's neighbours in feature space and on the map ---
  function pointsView() {
    return Bokeh.index.find_one(models.points);
  }
  function nearestOnScreen(sx, sy, radius) {
    const view = pointsView();
    const xs = view.coordinates.x_scale;
    const ys = view.coordinates.y_scale;
    const [x, y] = coords();
    const mask = visible();
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
  function tap(event) {
    if (!models) return;
    // The point under the pointer, as Bokeh's own hit test found it for the hover; else the nearest.
    const i = state.hovered >= 0 ? state.hovered : nearestOnScreen(event.sx, event.sy, 12);
    if (i >= 0) focus(i);
  }
  function featureNeighbours(i) {
    const s = set();
    const all = decode(s.neighbours, Int32Array);
    const distances = decode(s.distances, Float32Array);
    const out = [];
    for (let j = 0; j < s.k; j++) {
      const n = all[i * s.k + j];
      if (n >= 0) out.push([n, distances[i * s.k + j]]);
    }
    return out;
  }
  function mapNeighbours(i, k) {
    const [x, y] = coords();
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
  function neighbourList(title, list, others) {
    const box = make("div", "list");
    box.appendChild(make("h2", "", title));
    for (const [j, distance] of list) {
      const row = make("div", `neighbour${others.has(j) ? " shared" : ""}`);
      row.dataset.index = String(j);
      const text = make("div", "text");
      const first = make("div", "", label(j));
      if (others.has(j)) first.appendChild(make("span", "both", " ●"));
      text.appendChild(first);
      const cluster = clusterCode(j);
      text.appendChild(make("div", "distance", `distance ${fmt(distance)}${cluster >= 0 ? ` · cluster ${cluster}` : ""}`));
      row.title = DATA.paths[j];
      row.append(thumb(j, 48), text);
      row.addEventListener("click", () => focus(j));
      box.appendChild(row);
    }
    return box;
  }
  function focus(i) {
    state.focus = i;
    const [x, y] = coords();
    const features = featureNeighbours(i);
    const k = set().k;
    const map = mapNeighbours(i, k);
    const inMap = new Set(map.map(([j]) => j));
    const inFeatures = new Set(features.map(([j]) => j));
    const kept = features.filter(([j]) => inMap.has(j)).length;
    models.focus.data = { x: [x[i]], y: [y[i]] };
    models.links.data = {
      x0: features.map(() => x[i]),
      y0: features.map(() => y[i]),
      x1: features.map(([j]) => x[j]),
      y1: features.map(([j]) => y[j]),
    };
    const panel = el("neighbours");
    const head = make("div", "focus-head");
    head.append(thumb(i, Math.max(T.cell, 96)), fields(i));
    const open = make("a", "open", "open the image");
    open.href = imageUrl(i);
    open.target = "_blank";
    open.rel = "noopener";
    head.querySelector(".fields").appendChild(open);
    const summary = make(
      "p",
      "summary",
      `${kept} of its ${features.length} nearest in feature space are among its ${map.length} nearest on the map ` +
        "(● in both); lines on the map go to its feature-space neighbours.",
    );
    const columns = make("div", "columns");
    columns.append(
      neighbourList(`feature space (${set().id})`, features, inMap),
      neighbourList("on the map", map, inFeatures),
    );
    panel.replaceChildren(head, summary, columns);
    panel.dataset.index = String(i);
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
    showMatches();
    saveState();
    return state.matches.length;
  }
  function showMatches() {
    const [x, y] = coords();
    models.matches.data = { x: state.matches.map((i) => x[i]), y: state.matches.map((i) => y[i]) };
  }

  // --- selection and its CSV ---
  function selected() {
    return Array.from(models.source.selected.indices).sort((a, b) => a - b);
  }
  function selectionChanged() {
    if (!models) return;
    const n = selected().length;
    el("selection-count").textContent = n ? `${n.toLocaleString("en")} selected` : "";
    el("export-selection").disabled = n === 0;
    el("clear-selection").disabled = n === 0;
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
      showDensity();
      saveState();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && event.target === document.body) unfocus();
    });
  }

  // --- the view in the page's address (#run=2&colour=1&find=zebra&image=zebra/z_01.png): a link to it
  // opens the same run, colouring, search and clicked image. Images are named by path, not by index.
  function saveState() {
    const params = new URLSearchParams();
    if (state.run) params.set("run", String(state.run));
    if (state.colouring) params.set("colour", String(state.colouring));
    if (state.query) params.set("find", state.query);
    if (state.focus >= 0) params.set("image", DATA.paths[state.focus]);
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
  function restoreState() {
    const params = new URLSearchParams(location.hash.slice(1));
    const run = Number(params.get("run"));
    if (Number.isInteger(run) && run > 0 && run < DATA.runs.length) {
      el("run-select").value = String(run);
      showRun(run);
    }
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
    if (image >= 0) focus(image);
    if (params.get("names") === "0") {
      el("names-toggle").checked = state.names = false;
      scheduleNames();
    }
    if (params.get("density") === "1") {
      el("density-toggle").checked = state.density = true;
      showDensity();
    }
  }
  function unfocus() {
    state.focus = -1;
    models.focus.data = { x: [], y: [] };
    models.links.data = { x0: [], y0: [], x1: [], y1: [] };
    const panel = el("neighbours");
    panel.replaceChildren(make("p", "hint", "Click a point to see its nearest neighbours in feature space beside its nearest on the map."));
    delete panel.dataset.index;
    saveState();
  }
  function start() {
    const doc = window.Bokeh && Bokeh.documents[0];
    const points = doc && doc.get_model_by_name("points");
    if (!points || !Bokeh.index.find_one(points)) {
      setTimeout(start, 25);
      return;
    }
    models = {
      plot: doc.get_model_by_name("plot"),
      points,
      source: points.data_source,
      filter: points.view.filter,
      mapper: doc.get_model_by_name("colour-mapper"),
      matches: doc.get_model_by_name("matches-source"),
      focus: doc.get_model_by_name("focus-source"),
      links: doc.get_model_by_name("neighbour-links-source"),
      density: doc.get_model_by_name("density"),
      densitySource: doc.get_model_by_name("density-source"),
    };
    // Names follow every pan, zoom, reset and resize, drawn in the frame after the change.
    for (const range of [models.plot.x_range, models.plot.y_range]) range.connect(range.change, scheduleNames);
    new ResizeObserver(scheduleNames).observe(el("map-names").parentElement);
    atlasStyles();
    controls();
    // The plot already shows the first colouring (the label): draw its legend, not all points again.
    const colouring = currentColouring();
    renderLegend(colouring, colourValues(colouring));
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
    state,
    data: DATA,
  };
  start();
})();
