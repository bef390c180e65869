// The explorer's points page (scripts/tsne_atlas/explorer_points.py inlines it after the vendored
// regl-scatterplot): every image of the sweep drawn with WebGL, its data loaded when first needed from the
// classic scripts in explorer-data/ beside the page (each calls tsneAtlasData(key, value)): a run's
// coordinates when shown, a colouring's codes when chosen, paths, metadata and predictions in chunks on a
// hover, click or search, neighbour lists in chunks on a click.
//
// A 2-D canvas over the points ("overlay") draws the search matches, the clicked image and lines to its
// feature-space neighbours and, zoomed in until few images are in view, their thumbnails.
//
// Every user string (paths, labels, metadata, predictions, the search box) is only ever set as
// textContent or as an attribute value, never parsed as markup.
(() => {
  "use strict";
  const DATA = JSON.parse(document.getElementById("tsne-atlas-data").textContent);
  const N = DATA.n;
  const T = DATA.thumbs;
  const PER_ATLAS = T.columns * T.columns;
  const MISSING = DATA.missing;
  const CHUNK = DATA.chunk;
  const CHUNKS = Math.ceil(N / CHUNK);
  const DATA_FORMAT = 1; // explorer_points.DATA_FORMAT
  // Zoomed in to at most THUMBS_MAX images in view, needing at most ATLASES_MAX atlases (each 64 or 256
  // cells), the points become their thumbnails; at most ATLASES_KEPT decoded atlases are kept.
  const THUMBS_MAX = 2000;
  const ATLASES_MAX = 256;
  const ATLASES_KEPT = 320;
  const MATCH_RINGS_MAX = 20000; // search matches ringed on the map at most (in view)
  const el = (id) => document.getElementById(id);
  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const fmt = (value) => (Number.isFinite(value) ? Number(value.toPrecision(4)).toString() : "n/a");
  const TYPES = { "<u1": Uint8Array, "<u2": Uint16Array, "<i4": Int32Array, "<f4": Float32Array };
  function decode(value) {
    const binary = atob(value.data);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new TYPES[value.dtype](bytes.buffer);
  }
  function status(text, error = false) {
    const line = el("status");
    line.textContent = text;
    line.classList.toggle("error", error);
  }

  // --- data scripts: explorer-data/<key>.js, each loaded once; its value kept (decoded by the caller) ---
  const loading = new Map(); // key -> Promise of the value
  const waiting = new Map(); // key -> resolve, while its script runs
  window.tsneAtlasData = (key, value) => {
    const resolve = waiting.get(key);
    if (resolve) {
      waiting.delete(key);
      resolve(value);
    }
  };
  function load(key) {
    if (!loading.has(key)) {
      const url = `${DATA.data}${key}.js`;
      loading.set(
        key,
        new Promise((resolve, reject) => {
          waiting.set(key, resolve);
          const script = document.createElement("script");
          script.src = url;
          script.onload = () => {
            script.remove();
            if (waiting.delete(key)) reject(new Error(`${url} holds no data for ${key}: rebuild the page (the explorer rule)`));
          };
          script.onerror = () => {
            script.remove();
            waiting.delete(key);
            reject(new Error(`${url} could not be read: keep the folder ${DATA.data} beside the page`));
          };
          document.head.appendChild(script);
        }),
      );
    }
    return loading.get(key);
  }
  const cache = new Map(); // derived values by key (decoded arrays, per-run coordinates)
  async function derived(key, make) {
    if (!cache.has(key)) cache.set(key, make());
    return cache.get(key);
  }

  // --- the per-image data ---
  const LABEL = DATA.colourings[0]; // explorer.colourings' first: the label, categorical
  let labelCodes = null;
  const label = (i) => DATA.classes[labelCodes[i]];
  const rowsOf = (i) => Math.floor(i / CHUNK);
  const rowChunks = new Array(CHUNKS).fill(null);
  async function rows(chunk) {
    if (!rowChunks[chunk]) rowChunks[chunk] = await load(`rows-${chunk}`);
    return rowChunks[chunk];
  }
  async function rowsFor(indices) {
    await Promise.all(Array.from(new Set(Array.from(indices, rowsOf)), rows));
  }
  const path = (i) => rowChunks[rowsOf(i)].paths[i % CHUNK]; // once rows(rowsOf(i)) has resolved
  // A run's coordinates: x, y as stored, and in the renderer's [-1, 1] (one scale for both axes: the map
  // keeps its aspect), with the data range that [-1, 1] covers.
  function runCoords(k) {
    return derived(`run-${k}`, async () => {
      const value = await load(`run-${k}`);
      const x = decode(value.x);
      const y = decode(value.y);
      let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
      for (let i = 0; i < N; i++) {
        if (x[i] < x0) x0 = x[i];
        if (x[i] > x1) x1 = x[i];
        if (y[i] < y0) y0 = y[i];
        if (y[i] > y1) y1 = y[i];
      }
      const cx = (x0 + x1) / 2;
      const cy = (y0 + y1) / 2;
      const half = (Math.max(x1 - x0, y1 - y0, 1e-9) / 2) * 1.05;
      const nx = new Float32Array(N);
      const ny = new Float32Array(N);
      for (let i = 0; i < N; i++) {
        nx[i] = (x[i] - cx) / half;
        ny[i] = (y[i] - cy) / half;
      }
      return { x, y, nx, ny, domainX: [cx - half, cx + half], domainY: [cy - half, cy + half], extent: [x0, x1, y0, y1] };
    });
  }
  // The colouring of option c for feature set s (a per-set option's entry, null where the set has none).
  const colouringFor = (c, s) => {
    const option = DATA.colourings[c];
    return option.per_set ? option.sets[s] : option;
  };
  // Each image's colour code into the palette: a category's code, or for numbers one of 256 bins of the
  // range with n/a the 257th (grey).
  function colourCodes(colouring) {
    if (!colouring) return Promise.resolve({ codes: new Uint8Array(N), palette: [MISSING], values: null });
    return derived(`codes-${colouring.file}`, async () => {
      const values = decode(await load(colouring.file));
      if (colouring.kind === "categorical") return { codes: values, palette: colouring.colours, values };
      const codes = new Uint16Array(N);
      const span = colouring.high - colouring.low;
      for (let i = 0; i < N; i++) {
        const v = values[i];
        codes[i] = Number.isFinite(v) ? Math.min(255, Math.max(0, Math.floor(((v - colouring.low) / span) * 256))) : 256;
      }
      return { codes, palette: colouring.colours.concat([MISSING]), values };
    });
  }
  const CLUSTERS = DATA.colourings.findIndex((option) => option.key === "cluster");
  async function clusterCodes(s) {
    const colouring = CLUSTERS >= 0 ? colouringFor(CLUSTERS, s) : null;
    return colouring ? { colouring, codes: (await colourCodes(colouring)).codes } : null;
  }
  async function featureNeighbours(i, s) {
    const chunk = rowsOf(i);
    const lists = await derived(`neighbours-${s}-${chunk}`, async () => {
      const value = await load(`neighbours-${s}-${chunk}`);
      return { neighbours: decode(value.neighbours), distances: decode(value.distances) };
    });
    const k = DATA.sets[s].k;
    const out = [];
    for (let j = 0; j < k; j++) {
      const at = (i % CHUNK) * k + j;
      if (lists.neighbours[at] >= 0) out.push([lists.neighbours[at], lists.distances[at]]);
    }
    return out;
  }

  // --- state ---
  const state = {
    run: 0,
    colouring: 0,
    query: "",
    matches: [],
    focus: -1,
    focusNeighbours: [], // the clicked image's feature-space neighbours, for the lines on the map
    hovered: -1,
    selected: [], // sorted image indices
    hidden: new Set(), // legend codes hidden
    mode: "pan",
    thumbs: { shown: 0, inView: -1, indices: [], size: 0, atlases: 0, pending: 0 }, // the thumbnails last drawn
    drawn: null, // {run, colouring}: what the renderer shows
    moving: false, // the view moves: only every motionStride-th image is drawn
  };
  const setOf = () => DATA.runs[state.run].set;
  let coords = null; // the shown run's runCoords
  let colours = null; // the shown colouring's colourCodes

  // --- the renderer: regl-scatterplot on its canvas, with linear scales it keeps on the view ---
  function linearScale(domain, range = [0, 1]) {
    let d = domain.slice();
    let r = range.slice();
    const scale = (v) => r[0] + ((v - d[0]) / (d[1] - d[0])) * (r[1] - r[0]);
    scale.domain = (v) => (v === undefined ? d.slice() : ((d = Array.from(v)), scale));
    scale.range = (v) => (v === undefined ? r.slice() : ((r = Array.from(v)), scale));
    scale.invert = (p) => d[0] + ((p - r[0]) / (r[1] - r[0])) * (d[1] - d[0]);
    scale.copy = () => linearScale(d, r);
    return scale;
  }
  const wrap = el("canvas-wrap");
  const overlay = el("overlay");
  const size = () => {
    const box = wrap.getBoundingClientRect();
    return [Math.max(1, Math.floor(box.width)), Math.max(1, Math.floor(box.height))];
  };
  const [width0, height0] = size();
  const scatterplot = reglScatterplot.createScatterplot({
    canvas: el("points-canvas"),
    width: width0,
    height: height0,
    pointSize: DATA.point_size,
    opacity: 0.8,
    backgroundColor: [1, 1, 1, 1],
    pointColorHover: "#111111",
    pointOutlineWidth: 1,
    pointSizeSelected: 1,
    opacityInactiveScale: 0.15,
    deselectOnEscape: false,
    actionKeyMap: { lasso: "shift", merge: "ctrl" },
    lassoMinDelay: 0,
    lassoMinDist: 2,
    lassoColor: [0.1, 0.1, 0.1, 1],
    xScale: linearScale([-1, 1]),
    yScale: linearScale([-1, 1]),
  });
  function resize() {
    const [width, height] = size();
    scatterplot.set({ width, height });
    overlay.width = width * devicePixelRatio;
    overlay.height = height * devicePixelRatio;
    overlay.style.width = `${width}px`;
    overlay.style.height = `${height}px`;
    scheduleOverlay();
  }
  // Draws wait for each other (regl-scatterplot refuses a draw while one is under way).
  let drawing = Promise.resolve();
  function redraw(newRun) {
    drawing = drawing.then(async () => {
      // The hover, click and overlay keep the run on show until the renderer has drawn the next one.
      const next = await runCoords(state.run);
      colours = await colourCodes(colouringFor(state.colouring, setOf()));
      if (newRun) coords = null;
      scatterplot.set({ pointColor: colours.palette, pointColorActive: colours.palette, colorBy: "valueA" });
      const spatialIndex = newRun ? undefined : scatterplot.get("spatialIndex");
      await scatterplot.draw(
        { x: next.nx, y: next.ny, valueA: colours.codes },
        { zDataType: "categorical", spatialIndex, preventFilterReset: !newRun },
      );
      if (newRun) {
        scatterplot.set({ xScale: linearScale(next.domainX), yScale: linearScale(next.domainY) });
        scatterplot.reset();
      }
      coords = next;
      applyFilter();
      if (state.selected.length) scatterplot.select(state.selected, { preventEvent: true });
      state.drawn = { run: state.run, colouring: state.colouring };
      scheduleOverlay();
    });
    return drawing;
  }
  function applyFilter() {
    if (!state.hidden.size || !colours) {
      scatterplot.unfilter({ preventEvent: true });
      return;
    }
    const keep = [];
    for (let i = 0; i < N; i++) if (!state.hidden.has(colours.codes[i])) keep.push(i);
    scatterplot.filter(keep, { preventEvent: true });
  }
  const isHidden = (i) => state.hidden.size > 0 && state.hidden.has(colours.codes[i]);

  // --- while the view moves (a wheel step, a drag in pan mode) a page of more than DATA.motion_points
  // images draws an even subsample of them, so that each frame of the move costs what a page of that
  // many does; every image is drawn again MOTION_REST_MS after the last move ---
  const MOTION_REST_MS = 250;
  const motionStride = Math.ceil(N / DATA.motion_points);
  let motionTimer = 0;
  function moved() {
    if (motionStride <= 1 || !coords) return;
    clearTimeout(motionTimer);
    motionTimer = setTimeout(rest, MOTION_REST_MS);
    if (state.moving) return;
    state.moving = true;
    const keep = [];
    for (let i = 0; i < N; i += motionStride) if (!isHidden(i)) keep.push(i);
    scatterplot.filter(keep, { preventEvent: true });
  }
  function rest() {
    state.moving = false;
    drawing = drawing.then(() => {
      if (state.moving) return;
      applyFilter();
      if (state.selected.length) scatterplot.select(state.selected, { preventEvent: true });
    });
  }

  // --- legend: one entry per category (a click hides or shows its points), or the range of numbers ---
  function renderLegend() {
    const legend = el("legend");
    const option = DATA.colourings[state.colouring];
    const colouring = colouringFor(state.colouring, setOf());
    legend.replaceChildren(make("h2", "", option.name));
    if (option.hint) legend.appendChild(make("p", "hint", option.hint));
    if (!colouring) {
      legend.appendChild(make("p", "hint", "n/a for this run's feature set"));
      return;
    }
    const values = colours.values;
    if (colouring.kind === "categorical") {
      const counts = new Array(colouring.categories.length).fill(0);
      for (let i = 0; i < N; i++) counts[values[i]]++;
      legend.appendChild(make("p", "hint", "click an entry to hide or show its points"));
      const entries = make("div", "entries");
      legend.appendChild(entries);
      colouring.categories.forEach((name, code) => {
        const entry = make("button", `entry${state.hidden.has(code) ? " hidden" : ""}`);
        entry.type = "button";
        entry.dataset.code = String(code);
        const swatch = make("span", "swatch");
        swatch.style.background = colouring.colours[code];
        entry.append(swatch, make("span", "name", name), make("span", "n", counts[code].toLocaleString("en")));
        entry.addEventListener("click", () => {
          const hide = !state.hidden.has(code);
          if (hide) state.hidden.add(code);
          else state.hidden.delete(code);
          entry.classList.toggle("hidden", hide);
          applyFilter();
          legend.dataset.shown = String(N - countHidden());
          scheduleOverlay();
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
    legend.dataset.shown = String(N - countHidden());
  }
  function countHidden() {
    let hidden = 0;
    if (state.hidden.size) for (let i = 0; i < N; i++) if (state.hidden.has(colours.codes[i])) hidden++;
    return hidden;
  }

  // --- thumbnails: cells of the JPEG atlases, as CSS backgrounds in the card and panel, drawn from loaded
  // atlas images on the overlay ---
  function thumb(i, px = T.cell) {
    const atlas = Math.floor(i / PER_ATLAS);
    const cell = i % PER_ATLAS;
    const scale = px / T.cell;
    const node = make("div", "thumb");
    node.style.width = node.style.height = `${px}px`;
    node.style.backgroundImage = `url("${T.atlases[atlas]}")`;
    node.style.backgroundSize = `${T.columns * px}px auto`;
    node.style.backgroundPosition = `${-(cell % T.columns) * T.cell * scale}px ${-Math.floor(cell / T.columns) * T.cell * scale}px`;
    node.dataset.index = String(i);
    node.dataset.atlas = String(atlas);
    node.dataset.cell = String(cell);
    return node;
  }
  const atlasImages = new Map(); // atlas -> Image, in the order last used
  function atlasImage(atlas) {
    let image = atlasImages.get(atlas);
    if (image) {
      atlasImages.delete(atlas);
      atlasImages.set(atlas, image);
      return image;
    }
    image = new Image();
    image.onload = scheduleOverlay;
    image.src = T.atlases[atlas];
    atlasImages.set(atlas, image);
    if (atlasImages.size > ATLASES_KEPT) atlasImages.delete(atlasImages.keys().next().value);
    return image;
  }

  // --- per-image fields (once their rows are loaded): path, label, cluster and prediction of the run's
  // feature set, metadata ---
  async function fields(i) {
    const s = setOf();
    const [, clusters] = await Promise.all([rows(rowsOf(i)), clusterCodes(s)]);
    const row = rowChunks[rowsOf(i)];
    const at = i % CHUNK;
    const box = make("div", "fields");
    box.appendChild(make("div", "path", row.paths[at]));
    const pairs = [["class", label(i)]];
    if (clusters) pairs.push(["cluster", clusters.colouring.categories[clusters.codes[i]]]);
    if (row.predicted[s]) pairs.push(["predicted", row.predicted[s][at]]);
    DATA.metadata_columns.forEach((column, c) => pairs.push([column, row.metadata[c][at]]));
    for (const [name, value] of pairs) {
      const line = make("div", "field");
      line.appendChild(make("b", "", `${name}: `));
      line.appendChild(document.createTextNode(value));
      box.appendChild(line);
    }
    return box;
  }

  // --- hover: the page's own, on a grid of the run's points. The renderer's hover would redraw every
  // point to highlight the one under the pointer (a frame of 0.8 s at 1,000,000 points in software WebGL):
  // a move with no button pressed never reaches it; the overlay rings the hovered image instead. ---
  const HOVER_RADIUS = 6; // pixels from the pointer to a point it hovers (or half a thumbnail's side)
  function gridOf(c) {
    // Counting sort of the points into side x side cells of the run's extent: cell k holds
    // items[starts[k] .. starts[k + 1]).
    const side = Math.max(1, Math.ceil(Math.sqrt(N / 4)));
    const [x0, x1, y0, y1] = c.extent;
    const sx = side / Math.max(x1 - x0, 1e-12);
    const sy = side / Math.max(y1 - y0, 1e-12);
    const cellOf = new Int32Array(N);
    const starts = new Int32Array(side * side + 1);
    for (let i = 0; i < N; i++) {
      const cx = Math.min(side - 1, Math.floor((c.x[i] - x0) * sx));
      const cy = Math.min(side - 1, Math.floor((c.y[i] - y0) * sy));
      cellOf[i] = cy * side + cx;
      starts[cellOf[i] + 1]++;
    }
    for (let k = 0; k < side * side; k++) starts[k + 1] += starts[k];
    const fill = starts.slice(0, side * side);
    const items = new Int32Array(N);
    for (let i = 0; i < N; i++) items[fill[cellOf[i]]++] = i;
    return { side, x0, y0, sx, sy, starts, items };
  }
  // The shown image nearest the screen point (sx, sy) within radius pixels, -1 for none.
  function nearestOnScreen(sx, sy, radius) {
    if (!coords) return -1;
    const xs = scatterplot.get("xScale");
    const ys = scatterplot.get("yScale");
    const grid = coords.grid || (coords.grid = gridOf(coords));
    const [ax, bx] = [xs.invert(sx - radius), xs.invert(sx + radius)];
    const [ay, by] = [ys.invert(sy + radius), ys.invert(sy - radius)];
    const cell = (v, v0, scale) => Math.min(grid.side - 1, Math.max(0, Math.floor((v - v0) * scale)));
    let best = -1;
    let bestDistance = radius * radius;
    for (let cy = cell(Math.min(ay, by), grid.y0, grid.sy); cy <= cell(Math.max(ay, by), grid.y0, grid.sy); cy++) {
      for (let cx = cell(Math.min(ax, bx), grid.x0, grid.sx); cx <= cell(Math.max(ax, bx), grid.x0, grid.sx); cx++) {
        const k = cy * grid.side + cx;
        for (let at = grid.starts[k]; at < grid.starts[k + 1]; at++) {
          const i = grid.items[at];
          const dx = xs(coords.x[i]) - sx;
          const dy = ys(coords.y[i]) - sy;
          const d = dx * dx + dy * dy;
          if (d <= bestDistance && !isHidden(i)) {
            best = i;
            bestDistance = d;
          }
        }
      }
    }
    return best;
  }
  const pointer = { x: 0, y: 0 };
  window.addEventListener(
    "mousemove",
    (event) => {
      const box = wrap.getBoundingClientRect();
      const over = event.clientX >= box.left && event.clientX < box.right && event.clientY >= box.top && event.clientY < box.bottom;
      if (!over || event.buttons !== 0) return; // a drag: the renderer pans or draws its lasso
      event.stopImmediatePropagation();
      pointer.x = event.clientX;
      pointer.y = event.clientY;
      const radius = Math.max(HOVER_RADIUS, state.thumbs.size / 2);
      const i = nearestOnScreen(event.clientX - box.left, event.clientY - box.top, radius);
      if (i !== state.hovered) hover(i).catch(fail);
      else placeCard();
    },
    true,
  );
  function placeCard() {
    const card = el("hover-card");
    if (card.hidden) return;
    const left = pointer.x + 16;
    const top = pointer.y + 16;
    const width = card.offsetWidth;
    const height = card.offsetHeight;
    card.style.left = `${left + width > window.innerWidth ? Math.max(0, left - width - 32) : left}px`;
    card.style.top = `${top + height > window.innerHeight ? Math.max(0, top - height - 32) : top}px`;
  }
  async function hover(i) {
    state.hovered = i;
    scheduleOverlay();
    const card = el("hover-card");
    if (i < 0) {
      card.hidden = true;
      delete card.dataset.index;
      return;
    }
    const box = await fields(i);
    if (state.hovered !== i) return; // the pointer moved on while the rows loaded
    card.replaceChildren(thumb(i), box);
    card.dataset.index = String(i);
    card.hidden = false;
    placeCard();
  }
  wrap.addEventListener("mouseleave", () => hover(-1));

  // --- click: the image's neighbours in feature space (the k-NN graph) and on the map. The renderer's
  // own click (select the point) is stopped before it: a click opens the panel, selection is the box's
  // and lasso's. ---
  let downAt = null;
  wrap.addEventListener("mousedown", (event) => (downAt = [event.clientX, event.clientY]), true);
  wrap.addEventListener(
    "click",
    (event) => {
      event.stopPropagation();
      if (!downAt || Math.hypot(event.clientX - downAt[0], event.clientY - downAt[1]) > 4 || !coords) return;
      const box = wrap.getBoundingClientRect();
      const i = state.hovered >= 0 ? state.hovered : nearestOnScreen(event.clientX - box.left, event.clientY - box.top, 12);
      if (i >= 0) focus(i).catch(fail);
    },
    true,
  );
  function screenX(i) {
    return scatterplot.get("xScale")(coords.x[i]);
  }
  function screenY(i) {
    return scatterplot.get("yScale")(coords.y[i]);
  }
  function mapNeighbours(i, k) {
    const { x, y } = coords;
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
    return DATA.image_base + path(i).split("/").map(encodeURIComponent).join("/");
  }
  function neighbourList(title, list, others, clusters) {
    const box = make("div", "list");
    box.appendChild(make("h2", "", title));
    for (const [j, distance] of list) {
      const row = make("div", `neighbour${others.has(j) ? " shared" : ""}`);
      row.dataset.index = String(j);
      const text = make("div", "text");
      const first = make("div", "", label(j));
      if (others.has(j)) first.appendChild(make("span", "both", " ●"));
      text.appendChild(first);
      const cluster = clusters ? clusters.codes[j] : -1;
      text.appendChild(make("div", "distance", `distance ${fmt(distance)}${cluster >= 0 ? ` · cluster ${cluster}` : ""}`));
      row.title = path(j);
      row.append(thumb(j, 48), text);
      row.addEventListener("click", () => focus(j).catch(fail));
      box.appendChild(row);
    }
    return box;
  }
  async function focus(i) {
    state.focus = i;
    const s = setOf();
    const features = await featureNeighbours(i, s);
    const map = mapNeighbours(i, DATA.sets[s].k);
    const clusters = await clusterCodes(s);
    await rowsFor([i, ...features.map(([j]) => j), ...map.map(([j]) => j)]);
    if (state.focus !== i) return;
    const head = make("div", "focus-head");
    head.append(thumb(i, Math.max(T.cell, 96)), await fields(i));
    const open = make("a", "open", "open the image");
    open.href = imageUrl(i);
    open.target = "_blank";
    open.rel = "noopener";
    head.querySelector(".fields").appendChild(open);
    const inMap = new Set(map.map(([j]) => j));
    const inFeatures = new Set(features.map(([j]) => j));
    const kept = features.filter(([j]) => inMap.has(j)).length;
    const summary = make(
      "p",
      "summary",
      `${kept} of its ${features.length} nearest in feature space are among its ${map.length} nearest on the map ` +
        "(● in both); lines on the map go to its feature-space neighbours.",
    );
    const columns = make("div", "columns");
    columns.append(
      neighbourList(`feature space (${DATA.sets[s].id})`, features, inMap, clusters),
      neighbourList("on the map", map, inFeatures, clusters),
    );
    const panel = el("neighbours");
    panel.replaceChildren(head, summary, columns);
    panel.dataset.index = String(i);
    state.focusNeighbours = features.map(([j]) => j);
    scheduleOverlay();
    saveState();
  }
  function unfocus() {
    state.focus = -1;
    state.focusNeighbours = [];
    const panel = el("neighbours");
    panel.replaceChildren(make("p", "hint", "Click a point to see its nearest neighbours in feature space beside its nearest on the map."));
    delete panel.dataset.index;
    scheduleOverlay();
    saveState();
  }

  // --- search: paths, labels and metadata (every chunk of rows is loaded on the first search) ---
  let lowered = null; // per chunk: lower-case paths and metadata
  let searchSerial = 0;
  async function search(query) {
    const serial = ++searchSerial;
    const q = query.trim().toLowerCase();
    state.query = q;
    const matches = [];
    if (q) {
      if (!lowered) {
        let done = 0;
        await Promise.all(
          Array.from({ length: CHUNKS }, (_, c) =>
            rows(c).then(() => {
              done++;
              if (done < CHUNKS) el("search-count").textContent = `reading paths: ${done} of ${CHUNKS}`;
            }),
          ),
        );
        lowered = rowChunks.map((row) => ({
          paths: row.paths.map((p) => p.toLowerCase()),
          metadata: row.metadata.map((values) => values.map((v) => v.toLowerCase())),
        }));
      }
      const classHit = DATA.classes.map((c) => c.toLowerCase().includes(q));
      for (let i = 0; i < N; i++) {
        const chunk = lowered[rowsOf(i)];
        const at = i % CHUNK;
        if (classHit[labelCodes[i]] || chunk.paths[at].includes(q) || chunk.metadata.some((values) => values[at].includes(q))) {
          matches.push(i);
        }
      }
    }
    if (serial !== searchSerial) return state.matches.length; // a later search took over
    state.matches = matches;
    el("search-count").textContent = q ? `${matches.length.toLocaleString("en")} of ${N.toLocaleString("en")} match` : "";
    el("select-matches").disabled = matches.length === 0;
    scheduleOverlay();
    saveState();
    return matches.length;
  }

  // --- selection: box and lasso (the renderer's), its count and its CSV ---
  function setMode(mode) {
    state.mode = mode;
    for (const name of ["pan", "box", "lasso"]) el(`mode-${name}`).classList.toggle("active", name === mode);
    if (mode === "pan") scatterplot.set({ mouseMode: "panZoom" });
    else scatterplot.set({ mouseMode: "lasso", lassoType: mode === "box" ? "rectangle" : "freeform" });
  }
  function selectionChanged(points) {
    state.selected = Array.from(points).sort((a, b) => a - b);
    const n = state.selected.length;
    el("selection-count").textContent = n ? `${n.toLocaleString("en")} selected` : "";
    el("export-selection").disabled = n === 0;
    el("clear-selection").disabled = n === 0;
  }
  scatterplot.subscribe("select", ({ points }) => selectionChanged(points));
  scatterplot.subscribe("deselect", () => selectionChanged([]));
  function csvField(value) {
    const text = String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }
  async function selectionCsv() {
    const indices = state.selected.slice();
    await rowsFor(indices);
    const s = setOf();
    const predicted = DATA.sets[s].predicted;
    const header = ["path", "label", "x", "y"].concat(predicted ? ["predicted"] : [], DATA.metadata_columns);
    const lines = [header.map(csvField).join(",")];
    for (const i of indices) {
      const row = rowChunks[rowsOf(i)];
      const at = i % CHUNK;
      const fieldsOf = [row.paths[at], label(i), coords.x[i].toPrecision(7), coords.y[i].toPrecision(7)];
      if (predicted) fieldsOf.push(row.predicted[s][at]);
      row.metadata.forEach((values) => fieldsOf.push(values[at]));
      lines.push(fieldsOf.map(csvField).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }
  async function downloadSelection() {
    const blob = new Blob([await selectionCsv()], { type: "text/csv;charset=utf-8" });
    const link = make("a");
    link.href = URL.createObjectURL(blob);
    link.download = "tsne-atlas-selection.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // --- the overlay: search matches, the clicked image and its lines, and zoomed in the thumbnails ---
  let overlayFrame = 0;
  function scheduleOverlay() {
    if (overlayFrame) return;
    overlayFrame = requestAnimationFrame(() => {
      overlayFrame = 0;
      drawOverlay();
    });
  }
  // The images in view, when there are few enough to draw as thumbnails (else null): the view's share of
  // the run's extent first tells whether asking the renderer's k-d tree is worth it.
  function fewInView() {
    const [x0, x1] = scatterplot.get("xScale").domain();
    const [y0, y1] = scatterplot.get("yScale").domain();
    const [ex0, ex1, ey0, ey1] = coords.extent;
    const share = ((Math.min(x1, ex1) - Math.max(x0, ex0)) * (Math.min(y1, ey1) - Math.max(y0, ey0))) / Math.max(1e-12, (ex1 - ex0) * (ey1 - ey0));
    if (share * N > 20 * THUMBS_MAX) return null;
    const found = scatterplot.get("pointsInView").filter((i) => !isHidden(i));
    return found.length <= THUMBS_MAX ? found : null;
  }
  function drawOverlay() {
    const context = overlay.getContext("2d");
    context.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    const [width, height] = [overlay.width / devicePixelRatio, overlay.height / devicePixelRatio];
    context.clearRect(0, 0, width, height);
    if (!coords) return;
    const xs = scatterplot.get("xScale");
    const ys = scatterplot.get("yScale");
    const inside = (sx, sy, margin = 0) => sx >= -margin && sx <= width + margin && sy >= -margin && sy <= height + margin;
    // Thumbnails
    const few = fewInView();
    const shown = [];
    let px = 0;
    let atlases = 0;
    if (few && few.length) {
      atlases = new Set(few.map((i) => Math.floor(i / PER_ATLAS))).size;
      if (atlases <= ATLASES_MAX) {
        px = Math.max(12, Math.min(T.cell * 2, Math.floor(0.9 * Math.sqrt((width * height) / few.length))));
        for (const i of few) {
          const image = atlasImage(Math.floor(i / PER_ATLAS));
          if (!image.complete || !image.naturalWidth) continue;
          const cell = i % PER_ATLAS;
          const sx = xs(coords.x[i]);
          const sy = ys(coords.y[i]);
          const column = cell % T.columns;
          const row = Math.floor(cell / T.columns);
          context.drawImage(image, column * T.cell, row * T.cell, T.cell, T.cell, sx - px / 2, sy - px / 2, px, px);
          shown.push(i);
        }
      }
    }
    // pending: images whose atlas is still loading (the thumbnails are complete when it is 0)
    const pending = atlases && atlases <= ATLASES_MAX ? few.length - shown.length : 0;
    state.thumbs = { shown: shown.length, inView: few ? few.length : -1, indices: shown, size: px, atlases, pending };
    if (!few) status("zoom in (wheel) until 2,000 or fewer images are in view to see them as thumbnails");
    else if (atlases > ATLASES_MAX) status(`${few.length.toLocaleString("en")} images in view from ${atlases} atlases: zoom in further for their thumbnails`);
    else status(`${few.length.toLocaleString("en")} images in view${shown.length < few.length ? ", thumbnails loading" : ""}`);
    // Search matches: rings
    context.lineWidth = 1.5;
    context.strokeStyle = "#000000";
    const radius = DATA.point_size / 2 + 3;
    let rings = 0;
    context.beginPath();
    for (const i of state.matches) {
      if (isHidden(i)) continue;
      const sx = xs(coords.x[i]);
      const sy = ys(coords.y[i]);
      if (!inside(sx, sy, radius)) continue;
      context.moveTo(sx + radius, sy);
      context.arc(sx, sy, radius, 0, 2 * Math.PI);
      if (++rings >= MATCH_RINGS_MAX) break;
    }
    context.stroke();
    // The hovered image: a dark ring (the renderer does not redraw for a hover)
    if (state.hovered >= 0) {
      context.strokeStyle = "#111111";
      context.lineWidth = 2;
      context.beginPath();
      context.arc(xs(coords.x[state.hovered]), ys(coords.y[state.hovered]), Math.max(DATA.point_size / 2 + 4, px / 2 + 2), 0, 2 * Math.PI);
      context.stroke();
    }
    // The clicked image and lines to its feature-space neighbours
    if (state.focus >= 0) {
      const fx = xs(coords.x[state.focus]);
      const fy = ys(coords.y[state.focus]);
      context.strokeStyle = "rgba(34, 34, 34, 0.6)";
      context.lineWidth = 1.2;
      context.beginPath();
      for (const j of state.focusNeighbours) {
        context.moveTo(fx, fy);
        context.lineTo(xs(coords.x[j]), ys(coords.y[j]));
      }
      context.stroke();
      context.strokeStyle = "#d62728";
      context.lineWidth = 3;
      context.beginPath();
      context.arc(fx, fy, DATA.point_size / 2 + 6, 0, 2 * Math.PI);
      context.stroke();
    }
  }
  scatterplot.subscribe("view", scheduleOverlay);
  // Before the renderer's own handlers (capture), so that the move's first frame is already thinned.
  const pointsCanvas = el("points-canvas");
  pointsCanvas.addEventListener("wheel", moved, { capture: true, passive: true });
  pointsCanvas.addEventListener(
    "pointermove",
    (event) => {
      if (event.buttons && state.mode === "pan" && !event.shiftKey) moved();
    },
    { capture: true, passive: true },
  );

  // --- runs and colourings ---
  async function showRun(k) {
    state.run = k;
    el("run-select").value = String(k);
    el("plot-title").textContent = DATA.runs[k].title;
    state.hidden.clear();
    await redraw(true);
    renderLegend();
    if (state.focus >= 0) await focus(state.focus);
    saveState();
  }
  async function showColouring(c) {
    state.colouring = c;
    el("colour-select").value = String(c);
    state.hidden.clear();
    await redraw(false);
    renderLegend();
    saveState();
  }

  // --- the view in the page's address (#run=2&colour=1&find=zebra&image=zebra/z_01.png), as the canvas
  // page keeps it: images are named by path ---
  function saveState() {
    const params = new URLSearchParams();
    if (state.run) params.set("run", String(state.run));
    if (state.colouring) params.set("colour", String(state.colouring));
    if (state.query) params.set("find", state.query);
    if (state.focus >= 0) params.set("image", path(state.focus));
    const hash = params.toString();
    if (hash === location.hash.slice(1)) return;
    try {
      history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
    } catch (error) {
      // Some browsers refuse history changes on file:// pages: the view still works, unsaved.
    }
  }
  const indexIn = (text, count) => {
    const k = text === null ? NaN : Number(text);
    return Number.isInteger(k) && k >= 0 && k < count ? k : 0;
  };
  async function findPath(wanted) {
    await Promise.all(Array.from({ length: CHUNKS }, (_, c) => rows(c)));
    for (let c = 0; c < CHUNKS; c++) {
      const at = rowChunks[c].paths.indexOf(wanted);
      if (at >= 0) return c * CHUNK + at;
    }
    return -1;
  }

  // --- controls ---
  function controls() {
    const runSelect = el("run-select");
    DATA.runs.forEach((r, k) => runSelect.appendChild(Object.assign(make("option", "", r.label), { value: String(k) })));
    runSelect.addEventListener("change", () => showRun(Number(runSelect.value)).catch(fail));
    const colourSelect = el("colour-select");
    DATA.colourings.forEach((c, k) => colourSelect.appendChild(Object.assign(make("option", "", c.name), { value: String(k) })));
    colourSelect.addEventListener("change", () => showColouring(Number(colourSelect.value)).catch(fail));
    let timer = null;
    el("search").addEventListener("input", (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => search(event.target.value).catch(fail), 120);
    });
    el("select-matches").addEventListener("click", () => scatterplot.select(state.matches));
    el("clear-selection").addEventListener("click", () => scatterplot.deselect());
    el("export-selection").addEventListener("click", () => downloadSelection().catch(fail));
    for (const mode of ["pan", "box", "lasso"]) el(`mode-${mode}`).addEventListener("click", () => setMode(mode));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && event.target === document.body) unfocus();
    });
    new ResizeObserver(resize).observe(wrap);
  }
  function fail(error) {
    console.error(error);
    status(String(error.message || error), true);
  }

  async function start() {
    controls();
    const index = await load("index");
    if (index.format !== DATA_FORMAT || index.token !== DATA.token) {
      throw new Error(`${DATA.data} belongs to another build of this page: rebuild both (the explorer rule)`);
    }
    const params = new URLSearchParams(location.hash.slice(1));
    state.run = indexIn(params.get("run"), DATA.runs.length);
    state.colouring = indexIn(params.get("colour"), DATA.colourings.length);
    el("run-select").value = String(state.run);
    el("colour-select").value = String(state.colouring);
    el("plot-title").textContent = DATA.runs[state.run].title;
    labelCodes = (await colourCodes(LABEL)).values;
    resize();
    await redraw(true);
    renderLegend();
    const query = params.get("find");
    if (query) {
      el("search").value = query;
      await search(query);
    }
    if (params.get("image")) {
      const image = await findPath(params.get("image"));
      if (image >= 0) await focus(image);
    }
    saveState();
    window.tsneAtlas.ready = true;
    document.documentElement.dataset.explorerReady = "true";
  }

  window.tsneAtlas = {
    ready: false,
    state,
    data: DATA,
    scatterplot,
    load,
    focus,
    unfocus,
    search,
    hover,
    selectionCsv,
    setMode,
    showRun,
    showColouring,
    screenPosition: (i) => [screenX(i), screenY(i)],
  };
  start().catch(fail);
})();
