// Shared by every console page: configuration, words, dates, the JSON API, the live stream.
const config = JSON.parse(document.getElementById("console-config").textContent);
export const page = config.page;
export const user = config.user;
export const data = config.data;
export const mapConfig = config.map;
const words = config.messages;

/** The word for *key* in the user's language, with {name} placeholders filled. */
export function t(key, values = {}) {
  const text = words[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// The browser's own locale when it speaks the chosen language (en-GB dates for en-GB), else it.
const sameLanguage = navigator.language.split("-")[0] === config.lang.split("-")[0];
export const locale = sameLanguage ? navigator.language : config.lang;
const dateFormat = new Intl.DateTimeFormat(locale, {
  dateStyle: "short",
  timeStyle: "medium",
});
/** A date in the browser's (the user's) time zone and language. */
export function fmtDate(value) {
  return value ? dateFormat.format(new Date(value)) : "—";
}
export function fmtNumber(value, digits = 1) {
  return value === null || value === undefined
    ? "—"
    : new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value);
}

export const SEVERITIES = ["info", "low", "medium", "high", "critical"];
export const rank = (severity) => SEVERITIES.indexOf(severity);

const csrf = document.querySelector('meta[name="csrf-token"]').content;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Call the operations API as the signed-in user (cookie + CSRF token on changes). */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    throw new ApiError(401, t("error.signed_out"));
  }
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, json?.detail || response.statusText);
  return json;
}

/** Element helper: el("td", {class: "x", text: "y"}, child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

/** The SLA clock of an incident: which deadline runs, seconds left, and the colour. */
export function slaState(incident, now = Date.now()) {
  const closed = ["resolved", "false_alarm"].includes(incident.status);
  if (closed) return { label: t("sla.closed"), level: "done", deadline: null };
  const ack = incident.status === "open";
  const due = ack ? incident.ack_due_at : incident.resolve_due_at;
  if (!due) return { label: "—", level: "none", deadline: null };
  const opened = Date.parse(incident.opened_at);
  const end = Date.parse(due);
  const left = Math.round((end - now) / 1000);
  const breached = ack ? incident.ack_breached : incident.resolve_breached;
  let level = "ok";
  if (left <= 0 || breached) level = "red";
  else if (left < (end - opened) / 3000) level = "amber";
  const abs = Math.abs(left);
  const clock = `${Math.floor(abs / 60)}:${String(abs % 60).padStart(2, "0")}`;
  const label = left >= 0 ? clock : t("sla.overdue", { time: clock });
  return { label, level, deadline: ack ? "ack" : "resolve" };
}

export function slaCell(incident) {
  const state = slaState(incident);
  return el(
    "span",
    {
      class: `sla sla-${state.level}`,
      dataset: { slaFor: incident.id },
      title: state.deadline ? t(`sla.${state.deadline}`) : "",
    },
    state.deadline ? `${t(`sla.${state.deadline}.short`)} ${state.label}` : state.label,
  );
}

/** Keep every SLA clock on the page ticking (once a second). */
export function tickSla(lookup) {
  setInterval(() => {
    for (const node of document.querySelectorAll("[data-sla-for]")) {
      const incident = lookup(node.dataset.slaFor);
      if (incident) node.replaceWith(slaCell(incident));
    }
  }, 1000);
}

/** The live stream (Server-Sent Events, the session cookie authenticates it). */
export function live(query, handlers) {
  const state = document.getElementById("live-state");
  const source = new EventSource(`/api/v1/live/sse?${query}`);
  let dropped = false;
  source.onopen = () => {
    state.textContent = t("live.on");
    state.className = "live-state on";
    // Changes made while the stream was down were missed: read the page's data again.
    if (dropped && handlers.reconnected) handlers.reconnected();
    dropped = false;
  };
  source.onerror = () => {
    dropped = true;
    state.textContent = t("live.off");
    state.className = "live-state off";
  };
  for (const [type, handler] of Object.entries(handlers)) {
    if (type === "reconnected") continue;
    source.addEventListener(type, (message) => handler(JSON.parse(message.data)));
  }
  return source;
}

let audio;
/** A short two-tone alert, made in the browser (no sound file to fetch). */
export function beep() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [i, freq] of [880, 660].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.15, now + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.001, now + i * 0.18 + 0.16);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.18);
      osc.stop(now + i * 0.18 + 0.17);
    }
    document.body.dataset.lastBeep = String(Date.now());
    // "suspended" until the page was clicked, unless the browser allows autoplay (kiosk).
    document.body.dataset.audioState = audio.state;
  } catch {
    // No audio device: the visible cue is still there.
  }
}

export function label(kind, value) {
  return t(`${kind}.${value}`);
}

const switcher = document.getElementById("lang-switch");
if (switcher) {
  switcher.addEventListener("change", () => {
    document.cookie = `cityops_lang=${switcher.value}; path=/; max-age=31536000; samesite=lax`;
    location.reload();
  });
}
