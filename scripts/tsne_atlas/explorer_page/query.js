  // --- the query set (query.js): explorer.py splices this into explorer.js's closure just before its
  // exports, on a page with a query set only (a page without one is explorer.js alone, as before).
  // Its images are a layer of their own on each map (the "query" renderers: diamonds, each run showing
  // where place_query put them on it), shown or hidden by "query set (N)". A query image is image
  // N + q wherever the page names an image (the hovered one, the clicked one, the ring in the other
  // map); the functions below extend explorer.js's functions of the same name, which still handle the
  // reference images (0 .. N - 1) exactly as before. A query image's neighbours are reference images:
  // its nearest in feature space (prepare_query's, per feature set: DATA.query.sets) beside its nearest
  // on the map, around the place it was put.
  const Q = DATA.query;
  const queryLabelCodes = decode(Q.label_codes, Int32Array);
  const queryLabel = (q) => Q.classes[queryLabelCodes[q]];
  state.queryShown = true; // the layer on show ("query set (N)")
  state.queryMatches = []; // the query images the search box finds (q, not N + q)
  const queryRun = (r) => Q.runs[DATA.runs.indexOf(r)];
  const queryCoords = (r) => [decode(queryRun(r).x, Float32Array), decode(queryRun(r).y, Float32Array)];
  const queryModel = (panel) => Bokeh.documents[0].get_model_by_name(`query${panel.side ? COMPARE_SUFFIX : ""}`);

  // Thumbnails: the query's atlases have the reference's cell size and columns (explorer.py checks), so a
  // query image's cell is the reference's function of q, in the query atlases.
  const referenceAtlasStyles = atlasStyles;
  atlasStyles = () => {
    referenceAtlasStyles();
    const style = document.createElement("style");
    style.textContent = Q.thumbs.atlases.map((url, a) => `.query-atlas-${a} { background-image: url("${url}"); }`).join("\n");
    document.head.appendChild(style);
  };
  const referenceThumb = thumb;
  thumb = (i, size = T.cell) => {
    if (i < N) return referenceThumb(i, size);
    const node = referenceThumb(i - N, size);
    node.classList.replace(`atlas-${node.dataset.atlas}`, `query-atlas-${node.dataset.atlas}`);
    node.dataset.index = String(i);
    return node;
  };
  // A query image's card: marked as one, its path, label (a class the reference lacks too) and metadata.
  const referenceFields = fields;
  fields = (i) => {
    if (i < N) return referenceFields(i);
    const q = i - N;
    const box = make("div", "fields");
    box.append(make("div", "query-badge", "query image"), make("div", "path", Q.paths[q]));
    const rows = [["class", queryLabel(q)]];
    Q.metadata.columns.forEach((column, c) => rows.push([column, Q.metadata.values[c][q]]));
    for (const [name, value] of rows) {
      const row = make("div", "field");
      row.appendChild(make("b", "", `${name}: `));
      row.appendChild(document.createTextNode(value));
      box.appendChild(row);
    }
    return box;
  };
  const referenceImageUrl = imageUrl;
  imageUrl = (i) => (i < N ? referenceImageUrl(i) : Q.image_base + Q.paths[i - N].split("/").map(encodeURIComponent).join("/"));

  // Hover: one tool hovers both layers of a map, calling once per layer (layer 1: the query's); the query
  // image under the pointer, if the layer is on show, comes before the reference images under it.
  const underPointer = [[[], []], [[], []]]; // per side: [reference indices, query indices]
  const referenceHover = hover;
  hover = (cbData, side = 0, layer = 0) => {
    if (!cbData) {
      underPointer[side] = [[], []];
      referenceHover(null, side);
      return;
    }
    underPointer[side][layer] = Array.from(cbData.index.indices);
    const query = state.queryShown ? underPointer[side][1].map((q) => N + q) : [];
    referenceHover({ index: { indices: query.length ? query : underPointer[side][0] }, geometry: cbData.geometry }, side);
  };
  const referenceRingLinked = ringLinked;
  ringLinked = (i, panel) => {
    if (i < N) {
      referenceRingLinked(i, panel);
      return;
    }
    const [x, y] = queryCoords(runOf(panel));
    state.linked = i;
    panel.models.linked.data = { x: [x[i - N]], y: [y[i - N]] };
  };

  // A map shows its run: the query set where it was placed on that run (before the view is fitted).
  const referenceLoadRun = loadRun;
  loadRun = (panel) => {
    const [x, y] = queryCoords(runOf(panel));
    queryModel(panel).data_source.data = { x, y };
    referenceLoadRun(panel);
  };

  // Click: a query image's nearest reference images in feature space beside its nearest reference images
  // on the map (around its placed point); every map shown marks it and draws lines to the former.
  function nearestReference(px, py, k, r) {
    const [x, y] = coords(r);
    const best = []; // [index, squared distance], ascending, at most k
    for (let j = 0; j < N; j++) {
      const d = (x[j] - px) ** 2 + (y[j] - py) ** 2;
      if (best.length === k && d >= best[k - 1][1]) continue;
      let at = best.length;
      while (at > 0 && best[at - 1][1] > d) at--;
      best.splice(at, 0, [j, d]);
      if (best.length > k) best.pop();
    }
    return best.map(([j, d]) => [j, Math.sqrt(d)]);
  }
  function focusQuery(i, side) {
    if (!comparing()) side = 0;
    state.focus = i;
    state.focusSide = side;
    const q = i - N;
    const clicked = panels[side];
    const r = runOf(clicked);
    const features = featureNeighbours(q, Q.sets[r.set]);
    const [qx, qy] = queryCoords(r);
    const map = nearestReference(qx[q], qy[q], Q.sets[r.set].k, r);
    const inMap = new Set(map.map(([j]) => j));
    const inFeatures = new Set(features.map(([j]) => j));
    const kept = features.filter(([j]) => inMap.has(j)).length;
    for (const p of shown()) {
      const [x, y] = coords(runOf(p));
      const [px, py] = queryCoords(runOf(p));
      p.models.focus.data = { x: [px[q]], y: [py[q]] };
      p.models.links.data = {
        x0: features.map(() => px[q]),
        y0: features.map(() => py[q]),
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
      `${kept} of its ${features.length} nearest reference images in feature space are among the ${map.length} nearest ` +
        `to where it is placed on the${where} map (● in both); lines on the map${comparing() ? "s" : ""} go to the former.`,
    );
    const columns = make("div", "columns");
    columns.append(
      neighbourList(`reference, feature space (${DATA.sets[r.set].id})`, features, inMap, r.set, side),
      neighbourList(`reference, on the${where} map`, map, inFeatures, r.set, side),
    );
    panel.replaceChildren(head, summary, columns);
    panel.dataset.index = String(i);
    panel.dataset.side = String(side);
    saveState();
  }
  const referenceFocus = focus;
  focus = (i, side = state.focusSide) => (i < N ? referenceFocus(i, side) : focusQuery(i, side));

  // Search: query paths and labels too, ringed like the reference's matches (none while the layer is
  // hidden); "select matches" still selects reference images only.
  const referenceSearch = search;
  search = (text) => {
    const q = text.trim().toLowerCase();
    state.queryMatches = [];
    if (q) {
      const classHit = Q.classes.map((c) => c.toLowerCase().includes(q));
      Q.paths.forEach((path, j) => {
        if (classHit[queryLabelCodes[j]] || path.toLowerCase().includes(q)) state.queryMatches.push(j);
      });
    }
    const n = referenceSearch(text);
    if (q) el("search-count").textContent += ` · ${state.queryMatches.length.toLocaleString("en")} of ${Q.n.toLocaleString("en")} query images`;
    return n + state.queryMatches.length;
  };
  showMatches = (panel) => {
    const [x, y] = coords(runOf(panel));
    const [qx, qy] = queryCoords(runOf(panel));
    const query = state.queryShown ? state.queryMatches : [];
    panel.models.matches.data = {
      x: state.matches.map((i) => x[i]).concat(query.map((q) => qx[q])),
      y: state.matches.map((i) => y[i]).concat(query.map((q) => qy[q])),
    };
  };

  // "query set (N)": the layer on both maps, shown or hidden (a hidden query image is no longer the
  // hovered or clicked one).
  function showQuery(on) {
    state.queryShown = on;
    el("query-toggle").checked = on;
    for (const panel of panels) queryModel(panel).visible = on;
    if (!on && state.hovered >= N) {
      el("hover-card").hidden = true;
      state.hovered = -1;
      clearLinked();
    }
    if (!on && state.focus >= N) unfocus();
    shown().forEach(showMatches);
    saveState();
  }
  el("query-toggle").addEventListener("change", (event) => {
    if (models) showQuery(event.target.checked);
  });

  // The address: a clicked query image as query-image=<its path> (the reference's image= is never
  // one), a hidden layer as query=0.
  const referenceSaveState = saveState;
  saveState = () => {
    const focused = state.focus;
    if (focused >= N) state.focus = -1;
    try {
      referenceSaveState();
    } finally {
      state.focus = focused;
    }
    if (focused < N && state.queryShown) return;
    const params = new URLSearchParams(location.hash.slice(1));
    if (focused >= N) params.set("query-image", Q.paths[focused - N]);
    if (focused >= N && state.focusSide) params.set("panel", "right");
    if (!state.queryShown) params.set("query", "0");
    try {
      history.replaceState(null, "", `#${params}`);
    } catch (error) {
      // As explorer.js's saveState: the view still works, unsaved.
    }
  };
  const referenceRestoreState = restoreState;
  restoreState = () => {
    const params = new URLSearchParams(location.hash.slice(1)); // read first: restoring rewrites it
    referenceRestoreState();
    if (params.get("query") === "0") showQuery(false);
    const q = Q.paths.indexOf(params.get("query-image"));
    if (q >= 0 && state.queryShown) focus(N + q, params.get("panel") === "right" ? 1 : 0);
  };

