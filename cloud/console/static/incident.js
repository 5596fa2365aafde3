// Incident detail: snapshot with box and zone, timeline, checklist, notes, audit, actions.
import { act, actionButtons, showError } from "./actions.js";
import { api, data, el, fmtDate, label, live, slaCell, t, tickSla, user } from "./common.js";
import { overlay, regionOf } from "./draw.js";

let incident = data.incident;
const errorBox = document.getElementById("action-error");

function fact(name, value) {
  return [el("dt", { text: t(name) }), el("dd", {}, value)];
}

function renderHead() {
  document.getElementById("incident-title").textContent = incident.title;
  document.getElementById("facts").replaceChildren(
    ...fact("field.severity", el("span", { class: `badge sev-${incident.severity}`, text: label("severity", incident.severity) })),
    ...fact("field.kind", label("kind", incident.kind)),
    ...fact("field.status", el("span", { id: "incident-status", text: label("status", incident.status) })),
    ...fact("field.department", incident.department),
    ...fact("field.device", incident.device_id + (incident.zone_id ? ` · ${incident.zone_id}` : "")),
    ...fact("field.opened", fmtDate(incident.opened_at)),
    ...fact("field.acknowledged", fmtDate(incident.acknowledged_at)),
    ...fact("field.sla", slaCell(incident)),
    ...fact("field.assignee", incident.assignee || "—"),
    ...fact("field.events", String(incident.event_count)),
  );
  const bar = document.getElementById("incident-actions");
  const buttons = actionButtons(incident, run);
  bar.replaceChildren(...(buttons ? [buttons] : []));
  if (buttons && !["resolved", "false_alarm"].includes(incident.status)) {
    buttons.append(
      el("button", { type: "button", class: "act act-false-alarm", dataset: { action: "false-alarm" }, text: t("action.false-alarm"), onclick: () => run(incident, "false-alarm") }),
    );
  }
  const writable = user?.can_write && !["resolved", "false_alarm"].includes(incident.status);
  document.getElementById("assign-form").hidden = !writable;
  document.getElementById("note-form").hidden = !user?.can_write;
  renderChecklist(writable);
  renderNotes();
}

function renderChecklist(writable) {
  const list = document.getElementById("checklist");
  list.replaceChildren(
    ...incident.checklist.map((item, index) => {
      const box = el("input", {
        type: "checkbox",
        id: `check-${index}`,
        checked: item.done,
        disabled: !writable,
        onchange: (e) => change(() => api(`/api/v1/incidents/${incident.id}/checklist/${index}`, { method: "PUT", body: { done: e.target.checked } })),
      });
      const by = item.done && item.done_by ? ` — ${item.done_by}, ${fmtDate(item.done_at)}` : "";
      return el("li", {}, box, el("label", { for: `check-${index}`, text: item.text + by }));
    }),
  );
  if (!incident.checklist.length) list.append(el("li", { text: "—" }));
}

function renderNotes() {
  document.getElementById("notes").replaceChildren(
    ...incident.notes.map((n) => el("li", {}, el("strong", { text: `${n.author} · ${fmtDate(n.at)}: ` }), n.text)),
  );
}

async function change(call) {
  try {
    incident = await call();
    renderHead();
    await loadAudit();
  } catch (error) {
    showError(errorBox, error);
    renderHead();
  }
}

function run(_incident, action) {
  return change(() => act(incident, action, {}));
}

document.getElementById("assign-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = document.getElementById("assignee-input").value.trim();
  change(() => api(`/api/v1/incidents/${incident.id}/assignee`, { method: "PUT", body: { assignee: value || null } }));
});
document.getElementById("note-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("note-input");
  const text = input.value.trim();
  if (!text) return;
  change(() => api(`/api/v1/incidents/${incident.id}/notes`, { method: "POST", body: { text } })).then(() => {
    input.value = "";
  });
});

async function loadAudit() {
  const trail = await api(`/api/v1/incidents/${incident.id}/audit`);
  document.getElementById("audit-rows").replaceChildren(
    ...trail.map((a) =>
      el("tr", {}, el("td", { text: fmtDate(a.at) }), el("td", { class: "actor", text: a.actor }), el("td", { class: "audit-action", text: a.action }), el("td", { text: JSON.stringify(a.detail) })),
    ),
  );
}

async function loadEvidence() {
  const events = [];
  for (const id of data.event_ids.slice(-50)) {
    try {
      events.push(await api(`/api/v1/events/${id}`));
    } catch {
      // An event the store no longer has (retention): the timeline shows the rest.
    }
  }
  document.getElementById("timeline").replaceChildren(
    ...events.map((e) => el("li", {}, el("strong", { text: fmtDate(e.observed_at) }), ` ${label("phase", e.phase)} · ${label("severity", e.severity)}${e.dwell_s ? ` · ${Math.round(e.dwell_s)} s` : ""}${e.summary ? ` · ${e.summary}` : ""}`)),
  );
  const shot = events.find((e) => e.snapshot);
  const figure = document.getElementById("snapshot");
  if (!shot) {
    figure.prepend(el("p", { class: "empty", text: t("incident.no_snapshot") }));
    return;
  }
  let zones = [];
  try {
    const cfg = await api(`/api/v1/devices/${incident.device_id}/config`);
    const cameras = cfg.config?.cameras || [];
    const camera = cameras.find((c) => c.id === shot.camera_id) || cameras[0];
    zones = (camera?.zones || []).filter((z) => !shot.zone_id || z.id === shot.zone_id);
  } catch {
    zones = [];
  }
  const boxes = shot.objects.map((o) => o.box);
  figure.prepend(
    overlay(`/api/v1/events/${shot.id}/snapshot`, shot.snapshot.width, shot.snapshot.height, regionOf(shot), { boxes, zones }),
  );
}

live("type=incident", {
  async reconnected() {
    incident = await api(`/api/v1/incidents/${incident.id}`);
    renderHead();
    loadAudit();
  },
  incident(message) {
    if (message.data.incident.id !== incident.id) return;
    incident = message.data.incident;
    renderHead();
    loadAudit();
  },
});
tickSla((id) => (id === incident.id ? incident : null));
renderHead();
loadAudit();
loadEvidence();
