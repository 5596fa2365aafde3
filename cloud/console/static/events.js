// Events: search by time range, kind, device and zone; events per hour by kind (SVG bars).
import { api, data, el, fmtDate, label, svg, t } from "./common.js";

const form = document.getElementById("event-search");
const tbody = document.getElementById("event-rows");
const more = document.getElementById("events-more");
const errorBox = document.getElementById("search-error");
let cursor = null;
for (const kind of data.kinds) document.getElementById("e-kind").append(el("option", { value: kind, text: label("kind", kind) }));

const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
// "To" starts empty (= up to now, new events included); datetime-local has no seconds, so a
// filled-in "now" would already leave out what happens in the current minute.
document.getElementById("e-start").value = local(new Date(Date.now() - 24 * 3600 * 1000));

function params() {
  const f = Object.fromEntries(new FormData(form));
  const p = new URLSearchParams();
  // datetime-local is the user's local time; the API wants aware timestamps.
  if (f.start) p.set("start", new Date(f.start).toISOString());
  if (f.end) p.set("end", new Date(f.end).toISOString());
  for (const name of ["kind", "device_id", "zone_id"]) if (f[name]) p.set(name, f[name]);
  return p;
}

const COLOURS = ["#d9480f", "#1971c2", "#2f9e44", "#ae3ec9", "#e67700", "#0c8599", "#5c940d"];

function chart(buckets, start, end) {
  const hour = 3600 * 1000;
  const first = Math.floor(start / hour) * hour;
  const slots = Math.max(1, Math.ceil((end - first) / hour));
  const kinds = [...new Set(buckets.map((b) => b.key))].sort();
  const counts = new Map();
  for (const b of buckets) {
    const slot = Math.floor((Date.parse(b.start) - first) / hour);
    const key = `${slot}|${b.key}`;
    counts.set(key, (counts.get(key) || 0) + b.count);
  }
  const totals = Array.from({ length: slots }, (_, s) => kinds.reduce((n, k) => n + (counts.get(`${s}|${k}`) || 0), 0));
  const top = Math.max(1, ...totals);
  const w = 900;
  const h = 180;
  const bar = w / slots;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h + 20}`, class: "bars", role: "img", "aria-label": t("events.chart") });
  for (let s = 0; s < slots; s += 1) {
    let y = h;
    for (const [i, kind] of kinds.entries()) {
      const n = counts.get(`${s}|${kind}`) || 0;
      if (!n) continue;
      const height = (n / top) * (h - 10);
      y -= height;
      const rect = svg("rect", { x: s * bar + 1, y, width: Math.max(1, bar - 2), height, fill: COLOURS[i % COLOURS.length] });
      const title = svg("title", {});
      title.textContent = `${fmtDate(new Date(first + s * hour))} · ${label("kind", kind)}: ${n}`;
      rect.append(title);
      root.append(rect);
    }
  }
  const axis = svg("text", { x: 0, y: h + 16, class: "axis" });
  axis.textContent = `${fmtDate(new Date(first))} → ${fmtDate(new Date(end))} · max ${top}/h`;
  root.append(axis);
  const legend = el("ul", { class: "legend" }, ...kinds.map((k, i) => el("li", {}, el("span", { class: "swatch", style: `background:${COLOURS[i % COLOURS.length]}` }), label("kind", k))));
  document.getElementById("chart").replaceChildren(root, legend);
}

function row(e) {
  return el(
    "tr",
    {},
    el("td", { text: fmtDate(e.observed_at) }),
    el("td", { text: label("kind", e.kind) }),
    el("td", { text: label("phase", e.phase) }),
    el("td", {}, el("span", { class: `badge sev-${e.severity}`, text: label("severity", e.severity) })),
    el("td", { text: e.device_id }),
    el("td", { text: e.zone_id || "—" }),
    el("td", { text: e.summary || "" }),
  );
}

async function search(append = false) {
  errorBox.hidden = true;
  const p = params();
  try {
    if (!append) {
      const counts = new URLSearchParams(p);
      counts.set("group_by", "kind");
      counts.set("interval_s", "3600");
      const buckets = await api(`/api/v1/events/counts?${counts}`);
      const start = p.get("start") ? Date.parse(p.get("start")) : Date.now() - 24 * 3600 * 1000;
      const end = p.get("end") ? Date.parse(p.get("end")) : Date.now();
      chart(buckets, start, end);
    }
    if (append && cursor) p.set("cursor", cursor);
    p.set("limit", "100");
    const page = await api(`/api/v1/events?${p}`);
    const rows = page.items.map(row);
    if (append) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    cursor = page.next_cursor;
    more.hidden = !cursor;
  } catch (error) {
    errorBox.textContent = t("error.action", { detail: error.message });
    errorBox.hidden = false;
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  search(false);
});
more.addEventListener("click", () => search(true));
search(false);
