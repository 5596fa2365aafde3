// Devices: health table with a telemetry sparkline; zones drawn on the last snapshot.
import { api, el, fmtDate, fmtNumber, label, svg, t } from "./common.js";
import { overlay, regionOf } from "./draw.js";

const tbody = document.getElementById("device-rows");

function sparkline(values) {
  const w = 120;
  const h = 28;
  const line = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "spark", role: "img" });
  const points = values.filter((v) => v !== null && v !== undefined);
  if (points.length < 2) return line;
  const lo = Math.min(...points);
  const hi = Math.max(...points);
  const coords = points.map((v, i) => `${(i / (points.length - 1)) * w},${h - 2 - ((v - lo) / (hi - lo || 1)) * (h - 4)}`);
  line.append(svg("polyline", { points: coords.join(" ") }));
  line.setAttribute("aria-label", t("devices.spark", { lo: fmtNumber(lo), hi: fmtNumber(hi) }));
  return line;
}

async function showDevice(device) {
  document.getElementById("device-title").textContent = `${device.id} · ${device.site}`;
  const figure = document.getElementById("device-snapshot");
  figure.replaceChildren(el("p", { text: t("devices.loading") }));
  const events = await api(`/api/v1/events?device_id=${encodeURIComponent(device.id)}&limit=20`);
  let cfg = null;
  try {
    cfg = (await api(`/api/v1/devices/${device.id}/config`)).config;
  } catch {
    cfg = null;
  }
  for (const summary of events.items) {
    const full = await api(`/api/v1/events/${summary.id}`);
    if (!full.snapshot) continue;
    const camera = (cfg?.cameras || []).find((c) => c.id === full.camera_id) || cfg?.cameras?.[0];
    figure.replaceChildren(
      overlay(`/api/v1/events/${full.id}/snapshot`, full.snapshot.width, full.snapshot.height, regionOf(full), {
        zones: camera?.zones || [],
        boxes: full.objects.map((o) => o.box),
      }),
      el("figcaption", { text: t("devices.snapshot_of", { when: fmtDate(full.observed_at), kind: label("kind", full.kind) }) }),
    );
    return;
  }
  figure.replaceChildren(el("p", { class: "empty", text: t("incident.no_snapshot") }));
}

function row(device, detail) {
  const last = detail?.telemetry?.[0] || {};
  const series = (detail?.telemetry || []).slice().reverse();
  return el(
    "tr",
    { id: `device-${device.id}`, class: device.blind_spot ? "blind" : "", dataset: { health: device.health } },
    el("td", {}, el("button", { type: "button", class: "linkish", text: device.id, onclick: () => showDevice(device) })),
    el("td", { text: device.site }),
    el("td", {}, el("span", { class: `badge health-${device.health}`, text: label("health", device.health) })),
    el("td", { text: fmtDate(device.last_seen) }),
    el("td", { text: fmtNumber(last.fps) }),
    el("td", { text: fmtNumber(last.inference_ms) }),
    el("td", { text: fmtNumber(last.outbox_depth, 0) }),
    el("td", { text: fmtNumber(last.temperature_c) }),
    el("td", {}, sparkline(series.map((x) => x.inference_ms ?? x.fps))),
  );
}

async function load() {
  const page = await api("/api/v1/devices?limit=500");
  const details = await Promise.all(
    page.items.map((d) => api(`/api/v1/devices/${d.id}?telemetry=30`).catch(() => null)),
  );
  tbody.replaceChildren(...page.items.map((d, i) => row(d, details[i])));
  const wanted = decodeURIComponent(location.hash.slice(1));
  const pick = page.items.find((d) => d.id === wanted) || page.items[0];
  if (pick) showDevice(pick);
}
load();
setInterval(load, 30000);
