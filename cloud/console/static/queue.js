// The incident queue: open incidents of the user's departments, live.
import { act, actionButtons, showError } from "./actions.js";
import { api, beep, data, el, fmtDate, label, live, rank, slaCell, t, tickSla } from "./common.js";

const rows = new Map();
let nextCursor = data.queue.next_cursor;
const tbody = document.getElementById("queue-rows");
const filters = document.getElementById("filters");
const errorBox = document.getElementById("action-error");
const OPEN = new Set(["open", "acknowledged", "dispatched"]);

for (const incident of data.queue.items) rows.set(incident.id, incident);

function fill(select, values, kind) {
  for (const value of values) select.append(el("option", { value, text: label(kind, value) }));
}
fill(document.getElementById("f-kind"), data.kinds, "kind");
fill(document.getElementById("f-severity"), data.severities, "severity");
const deptSelect = document.getElementById("f-department");
for (const dept of data.departments) {
  deptSelect.append(el("option", { value: dept.id, text: dept.name || dept.id }));
}

function wanted(incident) {
  const f = Object.fromEntries(new FormData(filters));
  return (
    OPEN.has(incident.status) &&
    (!f.department || incident.department === f.department) &&
    (!f.kind || incident.kind === f.kind) &&
    (!f.severity || incident.severity === f.severity) &&
    (!f.status || incident.status === f.status)
  );
}

function order(a, b) {
  return rank(b.severity) - rank(a.severity) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function row(incident) {
  const place = incident.zone_id ? `${incident.title}` : incident.title;
  return el(
    "tr",
    {
      id: `incident-${incident.id}`,
      class: `sev-${incident.severity}`,
      dataset: {
        status: incident.status,
        department: incident.department,
        firstEvent: incident.first_event_id,
      },
    },
    el("td", {}, el("span", { class: `badge sev-${incident.severity}`, text: label("severity", incident.severity) })),
    el("td", { text: label("kind", incident.kind) }),
    el("td", {}, el("a", { href: `/incidents/${incident.id}`, text: place })),
    el("td", { text: incident.department }),
    el("td", { class: "status", text: label("status", incident.status) }),
    el("td", { text: fmtDate(incident.opened_at) }),
    el("td", {}, slaCell(incident)),
    el("td", { class: "assignee", text: incident.assignee || "—" }),
    el("td", {}, actionButtons(incident, run)),
  );
}

function render() {
  // Live updates redraw the rows: keep the keyboard focus on the same control of the same row.
  const focused = document.activeElement;
  const keep = tbody.contains(focused)
    ? { id: focused.closest("tr")?.id, action: focused.dataset.action, link: focused.tagName === "A" }
    : null;
  const shown = [...rows.values()].filter(wanted).sort(order);
  tbody.replaceChildren(...shown.map(row));
  if (keep?.id) {
    const again = document.getElementById(keep.id);
    const target = keep.link ? again?.querySelector("a") : again?.querySelector(`[data-action="${keep.action}"]`);
    (target || again?.querySelector("a, button"))?.focus();
  }
  document.getElementById("queue-count").textContent = `(${shown.length})`;
  document.getElementById("queue-empty").hidden = shown.length > 0;
  document.getElementById("load-more").hidden = !nextCursor;
}

async function run(incident, action) {
  let body = {};
  if (action === "dispatch") {
    const assignee = await askAssignee(incident.assignee || "");
    if (assignee === null) return;
    body = assignee ? { assignee } : {};
  }
  try {
    const updated = await act(incident, action, body);
    rows.set(updated.id, updated);
    render();
  } catch (error) {
    showError(errorBox, error);
  }
}

function askAssignee(current) {
  const dialog = document.getElementById("dispatch-dialog");
  const input = document.getElementById("dispatch-assignee");
  input.value = current;
  return new Promise((resolve) => {
    const cancel = document.getElementById("dispatch-cancel");
    cancel.onclick = () => dialog.close("cancel");
    dialog.onclose = () => resolve(dialog.returnValue === "ok" ? input.value.trim() : null);
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}

async function reload() {
  const f = Object.fromEntries(new FormData(filters));
  const params = new URLSearchParams();
  for (const name of ["department", "kind", "severity", "status"]) if (f[name]) params.append(name, f[name]);
  const page = await api(`/console/api/queue?${params}`);
  rows.clear();
  for (const incident of page.items) rows.set(incident.id, incident);
  nextCursor = page.next_cursor;
  render();
}

document.getElementById("load-more").addEventListener("click", async () => {
  const f = Object.fromEntries(new FormData(filters));
  const params = new URLSearchParams({ cursor: nextCursor });
  for (const name of ["department", "kind", "severity", "status"]) if (f[name]) params.append(name, f[name]);
  const page = await api(`/console/api/queue?${params}`);
  for (const incident of page.items) rows.set(incident.id, incident);
  nextCursor = page.next_cursor;
  render();
});
filters.addEventListener("change", (e) => {
  if (e.target.id !== "f-sound") reload();
});

function announce(incident) {
  const banner = document.getElementById("alert-banner");
  banner.textContent = t("queue.new_high", {
    severity: label("severity", incident.severity),
    title: incident.title,
  });
  banner.hidden = false;
  setTimeout(() => {
    banner.hidden = true;
  }, 15000);
  if (document.getElementById("f-sound").checked) beep();
}

live("type=incident", {
  reconnected: reload,
  incident(message) {
    const change = message.data;
    const incident = change.incident;
    if (OPEN.has(incident.status)) rows.set(incident.id, incident);
    else rows.delete(incident.id);
    render();
    const node = document.getElementById(`incident-${incident.id}`);
    if (change.type === "created" && node) {
      node.classList.add("new");
      if (rank(incident.severity) >= rank("high")) announce(incident);
    }
  },
});

tickSla((id) => rows.get(id));
render();
