// Incident actions, through the operations API: the same lifecycle rules and errors.
import { api, el, t, user } from "./common.js";

export const NEXT_ACTIONS = {
  open: ["acknowledge", "resolve"],
  acknowledged: ["dispatch", "resolve"],
  dispatched: ["resolve"],
  resolved: [],
  false_alarm: [],
};

export async function act(incident, action, body) {
  const path = `/api/v1/incidents/${incident.id}/${action}`;
  return api(path, { method: "POST", body: body ?? {} });
}

/** Buttons for the next steps of *incident*; none for a role that cannot change incidents. */
export function actionButtons(incident, run) {
  if (!user?.can_write) return null;
  const cell = el("span", { class: "actions" });
  for (const action of NEXT_ACTIONS[incident.status] || []) {
    cell.append(
      el("button", {
        type: "button",
        class: `act act-${action}`,
        dataset: { action, incident: incident.id },
        "aria-label": `${t(`action.${action}`)}: ${incident.title}`,
        text: t(`action.${action}`),
        onclick: () => run(incident, action),
      }),
    );
  }
  return cell;
}

export function showError(node, error) {
  node.textContent = t("error.action", { detail: error.message });
  node.hidden = false;
  setTimeout(() => {
    node.hidden = true;
  }, 8000);
}
