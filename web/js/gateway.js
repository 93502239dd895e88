// gateway.js - the gateway-wide settings of SPEC section 5 (GET/PATCH /api/v1/gateway).
// Save sends a merge patch of the changed keys only; the server checks the ranges and its
// message is shown beside the field. The dialback secret is never shown.

import { api } from "./api.js";
import { h, notify, field, input, select, checkbox, clearErrors, showErrors, pageHeader } from "./ui.js";
import { TYPES } from "./partners.js";

const NUMBERS = [
  { key: "connection_limit", label: "Connection limit", unit: "streams", min: 1, max: 1000000, def: 1000, hint: "Server-to-server streams in all, inbound and outbound." },
  { key: "partner_connection_limit", label: "Partner connection limit", unit: "streams", min: 1, max: 65535, def: 20, hint: "Per partner, unless the partner sets its own limit." },
  { key: "keepalive_interval", label: "Keep-alive interval", unit: "seconds", min: 10, max: 86400, def: 300, hint: "Idle time before an outbound stream gets a keep-alive." },
  { key: "stream_establishment_timeout", label: "Stream establishment timeout", unit: "seconds", min: 5, max: 600, def: 60, hint: "Time a peer has to finish negotiating a stream." },
  { key: "stream_inactivity_timeout", label: "Stream inactivity timeout", unit: "seconds", min: 30, max: 86400, def: 600, hint: "A stream that receives nothing for this long is closed." },
  { key: "subscription_refresh_interval", label: "Subscription refresh interval", unit: "seconds", min: 600, max: 604800, def: 28800, hint: "How often presence of partner contacts is probed again." },
];

const fmt = (n) => n.toLocaleString("en-US");

export async function render(main, ctx) {
  const canWrite = ctx.can("write");
  let current = null;
  const dis = canWrite ? {} : { disabled: true };

  const controls = {};
  const numberFields = NUMBERS.map((n) => {
    const c = input(`gw-${n.key}`, { type: "number", min: String(n.min), max: String(n.max), step: "1", inputmode: "numeric", class: "input-num", readonly: !canWrite });
    controls[n.key] = c;
    return field(`${n.label} (${n.unit})`, c, { key: n.key, hint: `${n.hint} ${fmt(n.min)} to ${fmt(n.max)}; default ${fmt(n.def)}.` });
  });
  controls.log_message_bodies = checkbox("gw-log_message_bodies", false, dis);
  controls.unlisted_domains = select("gw-unlisted_domains", [["block", "Block"], ...TYPES.map(([v, l]) => [v, `Allow as ${l.toLowerCase()}`])], "block", dis);

  const saveBtn = canWrite ? h("button", { type: "submit", class: "btn btn-primary", id: "gw-save" }, "Save changes") : null;
  const resetBtn = canWrite ? h("button", { type: "button", class: "btn", id: "gw-reset" }, "Discard changes") : null;
  const summary = h("div", { class: "form-summary", role: "alert", tabindex: "-1", hidden: true });
  const form = h(
    "form",
    { class: "card settings-form", novalidate: true, "aria-labelledby": "gw-title" },
    summary,
    h(
      "fieldset",
      { class: "form-section" },
      h("legend", null, "Connections and timers"),
      h("div", { class: "settings-grid" }, numberFields),
    ),
    h(
      "fieldset",
      { class: "form-section" },
      h("legend", null, "Policy and privacy"),
      h(
        "div",
        { class: "settings-grid" },
        field("Unlisted domains", controls.unlisted_domains, { key: "unlisted_domains", hint: "Domains that are not partners are refused, or federate as this partner type with the default negotiation settings." }),
        field("Log message bodies", controls.log_message_bodies, { key: "log_message_bodies", hint: "Message bodies never appear in the log unless this is set." }),
      ),
      h("p", { class: "hint" }, "The dialback secret is never shown; rotate it with ", h("code", null, "fedgatectl gateway rotate-dialback-secret"), "."),
    ),
    canWrite ? h("div", { class: "form-actions" }, saveBtn, resetBtn) : h("p", { class: "muted" }, "Your role can read these settings but not change them."),
  );

  main.append(
    pageHeader("Gateway settings"),
    h("p", { class: "page-intro", id: "gw-title" }, "One set of settings for the whole gateway. Changes apply within seconds, without a restart."),
    form,
  );

  function fill(g) {
    current = g;
    for (const n of NUMBERS) controls[n.key].value = String(g[n.key]);
    controls.log_message_bodies.checked = Boolean(g.log_message_bodies);
    controls.unlisted_domains.value = g.unlisted_domains;
  }

  function changes() {
    const patch = {};
    for (const n of NUMBERS) {
      const raw = controls[n.key].value.trim();
      // anything but a whole number goes to the server as written: it answers with the range
      const v = /^-?\d+$/.test(raw) ? Number(raw) : raw;
      if (v !== current[n.key]) patch[n.key] = v;
    }
    if (controls.log_message_bodies.checked !== current.log_message_bodies) patch.log_message_bodies = controls.log_message_bodies.checked;
    if (controls.unlisted_domains.value !== current.unlisted_domains) patch.unlisted_domains = controls.unlisted_domains.value;
    return patch;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!canWrite) return;
    clearErrors(form);
    const patch = changes();
    if (!Object.keys(patch).length) {
      notify("info", "Nothing to save: no setting was changed.");
      return;
    }
    saveBtn.disabled = true;
    try {
      const r = await api("PATCH", "/gateway", patch);
      fill(r.gateway);
      notify("success", `Saved gateway settings: ${Object.keys(patch).join(", ")}.`);
    } catch (err) {
      if (err.status === 401) return;
      const first = showErrors(form, err, (k) => (controls[k] ? controls[k].id : null));
      (first || summary).focus();
    } finally {
      saveBtn.disabled = false;
    }
  });
  if (resetBtn) {
    resetBtn.addEventListener("click", () => {
      clearErrors(form);
      fill(current);
    });
  }

  try {
    fill((await api("GET", "/gateway")).gateway);
  } catch (e) {
    if (e.status !== 401) notify("error", `The gateway settings could not be loaded: ${e.message}`);
  }
  return null;
}
