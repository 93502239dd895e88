// audit.js - the audit log (GET /api/v1/audit?since&actor&action&object&limit), newest
// first, with the fields of SPEC section 6. Each record shows what changed (before ->
// after per key) and both documents in full on request. The filters live in the URL's
// hash query, so a filtered view survives a reload.

import { api } from "./api.js";
import { h, notify, field, input, select, clearErrors, showErrors, sortableTable, pageHeader, fmtTime } from "./ui.js";

const ACTIONS = [
  "partner.*", "partner.create", "partner.update", "partner.delete", "gateway.*", "user.*", "admin.*", "token.*",
];
const FILTERS = ["since", "actor", "action", "object", "limit"];

function show(v) {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return v.length ? v.join(", ") : "[]";
  if (typeof v === "string") return v === "" ? '""' : v;
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// The keys that differ between two records, skipping read-only mirrors (the *_unicode
// forms) when their A-label twin already differs.
function diff(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])].sort();
  return keys.filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k]));
}

function changeCell(r) {
  const b = r.before;
  const a = r.after;
  const out = [];
  if (b && a && typeof b === "object" && typeof a === "object") {
    const keys = diff(b, a);
    out.push(
      keys.length
        ? h("ul", { class: "plain changes" }, keys.map((k) => h("li", null, h("span", { class: "ch-key" }, k), ": ", h("del", null, show(b[k])), " → ", h("ins", null, show(a[k])))))
        : h("span", { class: "muted" }, /\.passwd$/.test(r.action) ? "new password set (passwords are never recorded)" : "no field changed"),
    );
  } else if (a && typeof a === "object") {
    out.push(h("div", { class: "small" }, h("span", { class: "ch-tag ch-add" }, "created"), " ", summary(a)));
  } else if (b && typeof b === "object") {
    out.push(h("div", { class: "small" }, h("span", { class: "ch-tag ch-del" }, "removed"), " ", summary(b)));
  } else {
    out.push(h("span", { class: "muted" }, "—"));
  }
  if (b !== null || a !== null) {
    out.push(
      h(
        "details",
        { class: "beforeafter" },
        h("summary", null, "Before and after"),
        h(
          "div",
          { class: "ba-grid" },
          h("div", null, h("div", { class: "ba-label" }, "Before"), h("pre", null, b === null ? "null" : JSON.stringify(b, null, 2))),
          h("div", null, h("div", { class: "ba-label" }, "After"), h("pre", null, a === null ? "null" : JSON.stringify(a, null, 2))),
        ),
      ),
    );
  }
  return out;
}

function summary(o) {
  const skip = new Set(["domain", "domain_unicode", "additional_domains_unicode", "jid", "name", "id"]);
  const parts = Object.keys(o).filter((k) => !skip.has(k)).sort().map((k) => `${k}=${show(o[k])}`);
  const text = parts.join(", ");
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export async function render(main) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const since = input("audit-since", { value: params.get("since") || "", placeholder: "2026-11-26" });
  const actor = input("audit-actor", { value: params.get("actor") || "", placeholder: "admin:* or cli:root" });
  const action = input("audit-action", { value: params.get("action") || "", placeholder: "partner.*", list: "audit-actions" });
  const object = input("audit-object", { value: params.get("object") || "", placeholder: "partner:example.org" });
  const limit = select("audit-limit", ["50", "100", "500", "1000"], params.get("limit") || "100");
  const count = h("p", { class: "count", "aria-live": "polite" });
  const table = sortableTable({
    label: "Audit records, newest first",
    sort: { key: "time", dir: -1 },
    emptyText: "No audit record matches.",
    columns: [
      { key: "time", label: "Time", sort: (r) => `${r.time}|${String(r.id).padStart(12, "0")}`, cell: (r) => h("time", { datetime: r.time }, fmtTime(r.time)), class: "col-time" },
      { key: "actor", label: "Actor", sort: (r) => r.actor, cell: (r) => r.actor },
      { key: "address", label: "Address", sort: (r) => r.address, cell: (r) => r.address },
      { key: "action", label: "Action", sort: (r) => r.action, cell: (r) => h("code", { class: "action" }, r.action) },
      { key: "object", label: "Object", sort: (r) => r.object, cell: (r) => r.object, class: "col-object" },
      { key: "change", label: "Change", cell: changeCell, class: "col-change" },
    ],
    rowAttrs: (r) => ({ dataset: { action: r.action, object: r.object, actor: r.actor } }),
  });

  const form = h(
    "form",
    { class: "filters card", novalidate: true, role: "search", "aria-label": "Filter the audit log" },
    h("div", { class: "form-summary", role: "alert", hidden: true }),
    h(
      "div",
      { class: "filter-grid" },
      field("Since", since, { key: "since", hint: "A date or an RFC 3339 time (UTC)." }),
      field("Actor", actor, { key: "actor", hint: "A glob: admin:*, token:*, cli:*." }),
      field("Action", action, { key: "action", hint: "A glob, such as partner.*" }),
      field("Object", object, { key: "object", hint: "A glob, such as partner:*.org" }),
      field("Show at most", limit, { key: "limit" }),
    ),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "btn btn-primary" }, "Apply filters"),
      h("button", { type: "button", class: "btn", id: "audit-clear" }, "Clear"),
      h("button", { type: "button", class: "btn", id: "audit-refresh" }, "Refresh"),
    ),
    h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))),
  );

  main.append(
    pageHeader("Audit log"),
    h("p", { class: "page-intro" }, "Every change from the control panel, the API and fedgatectl, newest first. Refused changes write no record."),
    form,
    count,
    h("div", { class: "table-wrap" }, table.el),
  );

  const controls = { since, actor, action, object, limit };

  async function load() {
    clearErrors(form);
    const q = new URLSearchParams();
    for (const k of FILTERS) {
      const v = controls[k].value.trim();
      if (v) q.set(k, v);
    }
    const hash = `#/audit${q.toString() ? `?${q}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
    try {
      const r = await api("GET", `/audit?${q}`);
      table.update(r.audit);
      count.textContent = `${r.audit.length} record${r.audit.length === 1 ? "" : "s"}${r.audit.length >= Number(limit.value) ? ` (the newest ${limit.value}; narrow the filters to see older ones)` : ""}`;
    } catch (err) {
      if (err.status === 401) return;
      const first = showErrors(form, err, (k) => (controls[k] ? controls[k].id : null), "The filters were not accepted:");
      if (first) first.focus();
      else notify("error", `The audit log could not be loaded: ${err.message}`);
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  form.querySelector("#audit-clear").addEventListener("click", () => {
    for (const k of ["since", "actor", "action", "object"]) controls[k].value = "";
    limit.value = "100";
    load();
  });
  form.querySelector("#audit-refresh").addEventListener("click", load);

  await load();
  return null;
}
