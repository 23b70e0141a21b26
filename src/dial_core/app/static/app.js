// The page of `dial serve`: one image, its prediction, clicks that correct it (AC), DISCA, guidance.
// Plain JavaScript over Leaflet (vendored from npm); the HTTP API is in notes/serve_contract.md.
// Server text only ever reaches the DOM through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOR = /^#[0-9a-fA-F]{6}$/;

const dial = {
  info: null,        // GET /api/info
  state: null,       // last GET /api/state (or the state of a change's answer)
  cls: 0,            // the chosen class
  map: null,
  layers: {},        // image, prediction, uncertainty tile layers
  urls: {},          // their current URLs
  clicks: null,      // layer group of the click markers
  patches: [],       // current suggestions, best first
  patchIndex: 0,     // the highlighted one
  patchShown: -1,    // the one "go to next patch" last brought into view
  patchBox: null,
  queue: Promise.resolve(),  // changes run one after the other, in the order they were made
};

// ---------------------------------------------------------------------------- HTTP
async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    const message = data && typeof data.error === "string" ? data.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return data;
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}

// Run a change after the previous ones (clicks made while one is computed are kept, in order).
function enqueue(task) {
  dial.queue = dial.queue.then(task).catch((err) => setStatus(`Error: ${err.message}`, "error"));
  return dial.queue;
}

// ---------------------------------------------------------------------------- coordinates
// Image pixel (row, col) <-> Leaflet: map.unproject([col, row], Z) (contract: "Coordinates").
const toLatLng = (row, col) => dial.map.unproject([col, row], dial.info.max_zoom);
function toPixel(latlng) {
  const p = dial.map.project(latlng, dial.info.max_zoom);
  return { row: Math.floor(p.y), col: Math.floor(p.x) };
}
const pixelBounds = (row0, col0, row1, col1) => L.latLngBounds(toLatLng(row1, col0), toLatLng(row0, col1));

// ---------------------------------------------------------------------------- layers
const tileUrl = (layer, version) => `/api/tiles/${layer}/{z}/{x}/{y}.png` + (version === undefined ? "" : `?v=${version}`);

function tileLayer(key, url, options) {
  const { width, height, max_zoom: z } = dial.info;
  dial.urls[key] = url;
  return L.tileLayer(url, {
    tileSize: dial.info.tile_size, minZoom: -2, maxZoom: z + 4, minNativeZoom: 0, maxNativeZoom: z,
    bounds: pixelBounds(0, 0, height, width), noWrap: true, keepBuffer: 1, ...options,
  });
}

// Point a layer at a new version. On the map, a new layer loads over the old one, which goes only
// once the new tiles are in (no blank flash); resolves then (or after 15 s).
function refreshLayer(key, url) {
  const old = dial.layers[key];
  if (dial.urls[key] === url) return Promise.resolve();
  dial.urls[key] = url;
  if (!dial.map.hasLayer(old)) { old.setUrl(url, true); return Promise.resolve(); }
  const fresh = L.tileLayer(url, old.options);
  dial.layers[key] = fresh;
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); old.remove(); resolve(); };
    const timer = setTimeout(done, 15000);
    fresh.once("load", done);
    fresh.addTo(dial.map);
  });
}

// ---------------------------------------------------------------------------- rendering
function className(index) {
  const c = dial.info.classes[index];
  return c ? c.name : `class ${index}`;
}
function classColor(index) {
  const c = dial.info.classes[index];
  return c && COLOR.test(c.color) ? c.color : "#888888";
}

function chooseClass(index) {
  if (!dial.info || index < 0 || index >= dial.info.classes.length) return;
  dial.cls = index;
  for (const button of document.querySelectorAll("button.class-button")) {
    button.classList.toggle("active", Number(button.dataset.class) === index);
    button.setAttribute("aria-pressed", String(Number(button.dataset.class) === index));
  }
}

function buildClassButtons() {
  const box = $("classes");
  dial.info.classes.forEach((c, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class-button";
    button.dataset.class = String(c.index);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = classColor(i);
    const label = document.createElement("span");
    label.textContent = (i < 9 ? `${i + 1} ` : "") + c.name;
    button.append(swatch, label);
    button.addEventListener("click", () => chooseClass(c.index));
    box.append(button);
  });
  chooseClass(0);
}

function drawClicks(clicks) {
  dial.clicks.clearLayers();
  clicks.forEach((k, i) => {
    const dot = document.createElement("div");
    dot.className = "click-dot";
    dot.style.background = classColor(k.class);
    const icon = L.divIcon({ html: dot, className: "click-marker", iconSize: [16, 16] });
    L.marker(toLatLng(k.row + 0.5, k.col + 0.5), { icon, keyboard: false })
      .bindTooltip(`${i + 1}: ${className(k.class)} (row ${k.row}, col ${k.col})`).addTo(dial.clicks);
  });
}

function showNumbers(state) {
  const miou = $("miou");
  if (dial.info.has_labels && state.miou !== null && state.miou !== undefined) {
    const per = (state.iou || []).map((v, i) => `${className(i)} ${v === null ? "–" : (100 * v).toFixed(1)}`).join(", ");
    miou.textContent = `mIoU ${(100 * state.miou).toFixed(1)} % (${per})`;
    miou.className = "";
  }
  $("click-count").textContent = `${state.clicks.length} click${state.clicks.length === 1 ? "" : "s"}` +
    (state.disca && state.disca.applied ? ` · DISCA applied on ${state.disca.clicks}` : "");
  $("undo").disabled = !state.can_undo;
  $("redo").disabled = !state.can_redo;
  const disca = $("disca");
  disca.disabled = state.clicks.length === 0 || !dial.info.methods.includes("disca");
  if (!dial.info.methods.includes("disca")) disca.title = "DISCA is off: start dial serve with --lr or --calibration";
}

async function render(state) {
  dial.state = state;
  drawClicks(state.clicks);
  showNumbers(state);
  await Promise.all([
    refreshLayer("prediction", tileUrl("prediction", state.version)),
    refreshLayer("uncertainty", tileUrl("uncertainty", state.version)),
  ]);
  document.body.dataset.version = String(state.version);  // test hook: what the page shows
  loadSuggestions();  // not awaited: guidance follows the map, it does not hold it up
}

// ---------------------------------------------------------------------------- guidance
async function loadSuggestions() {
  try {
    const answer = await api("GET", "/api/suggestions?count=5");
    dial.patches = answer.patches || [];
    dial.patchIndex = 0;
    dial.patchShown = -1;
    highlightPatch();
  } catch (err) {
    setStatus(`Error (suggestions): ${err.message}`, "error");
  }
}

function highlightPatch() {
  if (dial.patchBox) dial.patchBox.remove();
  dial.patchBox = null;
  const p = dial.patches[dial.patchIndex];
  $("next-patch").disabled = dial.patches.length === 0;
  if (!p) { $("suggestion").textContent = "No suggestion."; return; }
  dial.patchBox = L.rectangle(pixelBounds(p.row, p.col, p.row + p.height, p.col + p.width), {
    color: "#ffd400", weight: 3, dashArray: "6 4", fill: false, interactive: false,
  }).addTo(dial.map);
  $("suggestion").textContent = `Patch ${p.rank} of ${dial.patches.length} (${dial.info.acquisition}): ` +
    `rows ${p.row}–${p.row + p.height - 1}, cols ${p.col}–${p.col + p.width - 1}, score ${Number(p.score).toFixed(3)}`;
}

function goToNextPatch() {
  if (!dial.patches.length) return;
  if (dial.patchShown === dial.patchIndex) {  // already brought this one into view: the next one
    dial.patchIndex = (dial.patchIndex + 1) % dial.patches.length;
    highlightPatch();
  }
  dial.patchShown = dial.patchIndex;
  dial.map.fitBounds(dial.patchBox.getBounds(), { padding: [40, 40] });
}

// ---------------------------------------------------------------------------- changes
function describe(answer, what, roundTrip) {
  const s = Number(answer.seconds);
  $("latency").textContent = `Last answer: ${s.toFixed(2)} s on the server, ${roundTrip.toFixed(2)} s round trip` +
    (answer.windows !== undefined ? ` (${answer.windows} window${answer.windows === 1 ? "" : "s"})` : "");
  $("latency").className = "";
  const n = answer.changed_pixels;
  setStatus(`${what}: ${n} pixel${n === 1 ? "" : "s"} changed.`);
}

function change(path, body, what, busyText) {
  return enqueue(async () => {
    const started = performance.now();
    if (busyText) { document.body.classList.add("busy"); setStatus(busyText, "busy"); }
    try {
      const answer = await api("POST", path, body);
      describe(answer, what, (performance.now() - started) / 1000);
      await render(answer.state);
    } finally {
      document.body.classList.remove("busy");
    }
  });
}

function onMapClick(event) {
  const { row, col } = toPixel(event.latlng);
  if (row < 0 || col < 0 || row >= dial.info.height || col >= dial.info.width) {
    setStatus("That point is outside the image.", "error");
    return;
  }
  const cls = dial.cls;
  setStatus(`Correcting with ${className(cls)} at row ${row}, col ${col}…`, "busy");
  change("/api/clicks", { row, col, class: cls }, `${className(cls)} at row ${row}, col ${col}`);
}

const undo = () => change("/api/undo", undefined, "Undone");
const redo = () => change("/api/redo", undefined, "Redone");
const disca = () => change("/api/disca", undefined, "DISCA",
  "DISCA: adapting the network to your clicks, then predicting the whole image…");

function onKey(event) {
  if (event.target instanceof HTMLInputElement && event.target.type !== "range" && event.target.type !== "checkbox") return;
  const key = event.key.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && key === "z") {
    event.preventDefault();
    (event.shiftKey ? redo : undo)();
  } else if ((event.ctrlKey || event.metaKey) && key === "y") {
    event.preventDefault();
    redo();
  } else if (!event.ctrlKey && !event.metaKey && !event.altKey && /^[1-9]$/.test(event.key)) {
    chooseClass(Number(event.key) - 1);
  }
}

// ---------------------------------------------------------------------------- start
async function start() {
  try {
    dial.info = await api("GET", "/api/info");
    const state = await api("GET", "/api/state");
    dial.state = state;
    const info = dial.info;
    document.title = `${info.name} – dial serve`;
    $("image-name").textContent = info.name;
    $("image-meta").textContent = `${info.width} × ${info.height} px · ` +
      (info.georeferenced ? (info.crs || "georeferenced") : "pixel coordinates (no CRS)");
    if (!info.has_labels) $("miou").textContent = "mIoU: no label raster given";
    buildClassButtons();

    const map = L.map("map", { crs: L.CRS.Simple, minZoom: -2, maxZoom: info.max_zoom + 4, zoomSnap: 0.5,
                               attributionControl: false, doubleClickZoom: false });
    dial.map = map;
    dial.layers.image = tileLayer("image", tileUrl("image"), { zIndex: 1 }).addTo(map);  // never changes: cacheable
    dial.layers.prediction = tileLayer("prediction", tileUrl("prediction", state.version),
                                       { zIndex: 2, opacity: Number($("opacity").value), className: "pixelated" }).addTo(map);
    dial.layers.uncertainty = tileLayer("uncertainty", tileUrl("uncertainty", state.version), { zIndex: 3, opacity: 0.7 });
    if (info.has_labels) {  // the reference, to compare with by eye (it never changes)
      dial.layers.labels = tileLayer("labels", tileUrl("labels"), { zIndex: 4, className: "pixelated" });
      $("labels-row").hidden = false;
      $("labels-toggle").addEventListener("change", (e) => {
        if (e.target.checked) dial.layers.labels.addTo(map); else dial.layers.labels.remove();
      });
    }
    dial.clicks = L.layerGroup().addTo(map);
    map.fitBounds(pixelBounds(0, 0, info.height, info.width));
    map.on("click", onMapClick);

    $("opacity").addEventListener("input", (e) => dial.layers.prediction.setOpacity(Number(e.target.value)));
    $("uncertainty-toggle").addEventListener("change", (e) => {
      const layer = dial.layers.uncertainty;
      if (e.target.checked) layer.addTo(map);
      else layer.remove();
    });
    $("undo").addEventListener("click", undo);
    $("redo").addEventListener("click", redo);
    $("disca").addEventListener("click", disca);
    $("next-patch").addEventListener("click", goToNextPatch);
    document.addEventListener("keydown", onKey);

    await render(state);
    setStatus(state.clicks.length ? `Ready: ${state.clicks.length} saved click(s) restored.` : "Ready: choose a class and click the map.");
  } catch (err) {
    setStatus(`Error: ${err.message}`, "error");
  }
}

start();
