// Map: devices (online / offline / blind spot) and open incidents. Tiles only if configured:
// without them the markers (SVG circles) still show on a plain background.
import { api, el, label, live, mapConfig, t } from "./common.js";

const L = window.L;
const map = L.map("map", { preferCanvas: false }).setView(mapConfig.center, mapConfig.zoom);
if (mapConfig.tile_url) {
  L.tileLayer(mapConfig.tile_url, { attribution: mapConfig.attribution, maxZoom: 20 }).addTo(map);
} else {
  document.getElementById("map").classList.add("no-tiles");
}
const devicesLayer = L.layerGroup().addTo(map);
const incidentsLayer = L.layerGroup().addTo(map);
const list = document.getElementById("map-list");

function deviceClass(d) {
  if (d.blind_spot) return "blind";
  return d.online ? "online" : "offline";
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

async function load() {
  const [devices, queue] = await Promise.all([
    api("/api/v1/devices?limit=500"),
    // A role without incidents (technicians) still gets the devices.
    api("/console/api/queue?limit=500").catch(() => ({ items: [] })),
  ]);
  devicesLayer.clearLayers();
  incidentsLayer.clearLayers();
  const items = [];
  const bounds = [];
  for (const d of devices.items) {
    if (d.lat === null || d.lon === null) continue;
    const state = deviceClass(d);
    const marker = L.circleMarker([d.lat, d.lon], {
      radius: 13,
      className: `marker marker-device dev-${state}`,
      weight: 3,
    });
    const text = `${d.id} · ${d.site} · ${t(`map.${state}`)}`;
    // Permanent labels: with no tiles, the names are the only landmarks.
    marker.bindTooltip(d.id, { permanent: true, direction: "right", offset: [12, 0] });
    marker.bindPopup(() => link(`/devices#${d.id}`, text));
    marker.on("add", () => marker.getElement()?.setAttribute("data-device", d.id));
    marker.addTo(devicesLayer);
    bounds.push([d.lat, d.lon]);
    items.push(el("li", {}, el("span", { class: `dot dev-${state}` }), link(`/devices#${d.id}`, text)));
  }
  for (const i of queue.items) {
    if (i.lat === null || i.lon === null) continue;
    const marker = L.circleMarker([i.lat, i.lon], {
      radius: 6,
      className: `marker marker-incident sev-${i.severity}`,
      weight: 1,
    });
    const text = `${label("kind", i.kind)} · ${label("severity", i.severity)} · ${i.title}`;
    marker.bindTooltip(text, { direction: "top" });
    marker.on("click", () => window.location.assign(`/incidents/${i.id}`));
    marker.on("add", () => marker.getElement()?.setAttribute("data-incident", i.id));
    marker.addTo(incidentsLayer);
    bounds.push([i.lat, i.lon]);
    items.push(el("li", {}, el("span", { class: "dot inc" }), link(`/incidents/${i.id}`, text)));
  }
  list.replaceChildren(...items);
  if (bounds.length) map.fitBounds(bounds, { padding: [40, 40], maxZoom: 16 });
}

let pending;
live("type=incident", {
  incident() {
    clearTimeout(pending);
    pending = setTimeout(load, 500);
  },
});
load();
