// admins.js - administrators (GET/POST /admins, PATCH/DELETE /admins/{name}) and API tokens
// (GET/POST /tokens, DELETE /tokens/{id}). Every role reads both lists; only a
// server-admin sees the buttons that change them. A new token's secret is shown once.

import { api, seg } from "./api.js";
import { h, notify, field, input, select, showErrors, modal, confirmAction, sortableTable, pageHeader, fmtTime } from "./ui.js";
import { passwordPair } from "./users.js";

const ROLES = [
  ["server-admin", "Server admin"],
  ["administrator", "Administrator"],
  ["viewer", "Viewer"],
];
const ROLE_HINT = "Server admin: everything, including administrators and tokens. Administrator: partners, users and gateway settings. Viewer: reads everything, changes nothing.";
const roleBadge = (r) => h("span", { class: `role-badge role-${r}` }, r);

export async function render(main, ctx) {
  const canManage = ctx.can("admins");
  let admins = [];
  let tokens = [];

  const addBtn = canManage ? h("button", { type: "button", class: "btn btn-primary", id: "admin-add", onclick: () => addAdmin() }, h("span", { "aria-hidden": "true" }, "+ "), "Add administrator") : null;
  const tokenBtn = canManage ? h("button", { type: "button", class: "btn", id: "token-add", onclick: () => createToken() }, h("span", { "aria-hidden": "true" }, "+ "), "Create API token") : null;

  const adminTable = sortableTable({
    label: "Administrators",
    columns: [
      { key: "name", label: "Name", sort: (a) => a.name, cell: (a) => [h("strong", null, a.name), a.name === ctx.session.username ? h("span", { class: "muted" }, " (you)") : null] },
      { key: "role", label: "Role", sort: (a) => ROLES.findIndex((r) => r[0] === a.role), cell: (a) => roleBadge(a.role) },
      {
        key: "actions", label: "Actions", srLabel: "Actions", class: "col-actions",
        cell: (a) => canManage
          ? h(
            "div",
            { class: "row-actions" },
            h("button", { type: "button", class: "btn btn-small", dataset: { fkey: `edit:${a.name}` }, "aria-label": `Change ${a.name}`, onclick: () => editAdmin(a) }, "Change role or password"),
            h("button", { type: "button", class: "btn btn-small btn-danger-ghost", dataset: { fkey: `rm:${a.name}` }, "aria-label": `Remove ${a.name}`, onclick: () => removeAdmin(a) }, "Remove"),
          )
          : "",
      },
    ],
    rowAttrs: (a) => ({ dataset: { admin: a.name } }),
  });
  const tokenTable = sortableTable({
    label: "API tokens",
    sort: { key: "created", dir: -1 },
    columns: [
      { key: "id", label: "Token id", sort: (t) => t.id, cell: (t) => h("code", null, t.id) },
      { key: "admin", label: "Administrator", sort: (t) => t.admin, cell: (t) => t.admin },
      { key: "role", label: "Role", sort: (t) => t.role, cell: (t) => roleBadge(t.role) },
      { key: "created", label: "Created", sort: (t) => t.created || "", cell: (t) => fmtTime(t.created) },
      { key: "expires", label: "Expires", sort: (t) => t.expires || "9999", cell: (t) => (t.expires ? fmtTime(t.expires) : h("span", { class: "muted" }, "Never")) },
      {
        key: "actions", label: "Actions", srLabel: "Actions", class: "col-actions",
        cell: (t) => canManage
          ? h("button", { type: "button", class: "btn btn-small btn-danger-ghost", dataset: { fkey: `tok:${t.id}` }, "aria-label": `Delete token ${t.id}`, onclick: () => deleteToken(t) }, "Delete")
          : "",
      },
    ],
    rowAttrs: (t) => ({ dataset: { token: t.id } }),
  });

  main.append(
    pageHeader("Administrators and API tokens", addBtn),
    h("p", { class: "page-intro" }, "People who may use this control panel and the API, and the bearer tokens that scripts use. ", ROLE_HINT),
    ...(canManage ? [] : [h("p", { class: "banner banner-info" }, "Only a server admin can change administrators and tokens; your role can read them.")]),
    h("section", { class: "section", "aria-labelledby": "admins-h" }, h("h2", { id: "admins-h" }, "Administrators"), h("div", { class: "table-wrap table-narrow" }, adminTable.el)),
    h(
      "section",
      { class: "section", "aria-labelledby": "tokens-h" },
      h("div", { class: "section-head" }, h("h2", { id: "tokens-h" }, "API tokens"), tokenBtn),
      h("p", { class: "hint" }, "Scripts send a token as ", h("code", null, "Authorization: Bearer TOKEN"), ". A token acts with the lesser of its own role and its administrator's current role."),
      h("div", { class: "table-wrap" }, tokenTable.el),
    ),
  );

  async function load() {
    try {
      const [a, t] = await Promise.all([api("GET", "/admins"), api("GET", "/tokens")]);
      admins = a.admins;
      tokens = t.tokens;
      adminTable.update(admins);
      tokenTable.update(tokens);
      const td = tokenTable.tbody.querySelector(".empty-row td");
      if (td) td.textContent = "No API tokens.";
    } catch (e) {
      if (e.status !== 401) notify("error", `The administrators could not be loaded: ${e.message}`);
    }
  }

  function fail(form, err, map) {
    if (err.status === 401) return false;
    const first = showErrors(form, err, map);
    if (first) first.focus();
    return false;
  }

  async function addAdmin() {
    const name = input("admin-name", { autocomplete: "off", placeholder: "jdoe" });
    const role = select("admin-role", ROLES, "administrator");
    const [pwFields, check] = passwordPair("admin-new");
    const r = await modal({
      title: "Add administrator",
      content: [
        field("Name", name, { key: "name", required: true, hint: "1 to 64 characters: letters, digits, dot, hyphen, underscore." }),
        field("Role", role, { key: "role", hint: ROLE_HINT }),
        ...pwFields,
      ],
      submitLabel: "Add administrator",
      focusAfter: () => addBtn,
      onSubmit: async (form) => {
        const password = check(form);
        if (password === null) return false;
        try {
          const res = await api("POST", "/admins", { name: name.value.trim(), role: role.value, password });
          await load();
          return res.admin;
        } catch (err) {
          return fail(form, err, (k) => ({ name: name.id, role: role.id, password: "admin-new-password" })[k]);
        }
      },
    });
    if (r) notify("success", `Added administrator ${r.name} (${r.role}).`);
  }

  async function editAdmin(a) {
    const role = select("admin-edit-role", ROLES, a.role);
    const [pwFields, , pw] = passwordPair("admin-edit", "New password");
    const pw2 = () => document.getElementById("admin-edit-password2");
    const self = a.name === ctx.session.username;
    const r = await modal({
      title: `Change administrator ${a.name}`,
      content: [
        field("Role", role, { key: "role", hint: ROLE_HINT }),
        h("p", { class: "hint" }, "Leave the password fields empty to keep the current password.", self ? " Your other sessions end when you change your own password." : " A new password ends that administrator's sessions."),
        ...pwFields,
      ],
      submitLabel: "Save",
      onSubmit: async (form) => {
        const body = {};
        if (role.value !== a.role) body.role = role.value;
        if (pw.value || pw2().value) {
          if (pw.value !== pw2().value) return fail(form, { message: "The two passwords differ.", fields: ["password2"] }, () => "admin-edit-password2");
          body.password = pw.value;
        }
        if (!Object.keys(body).length) return fail(form, { message: "Nothing to save: choose another role or type a new password.", fields: [] }, () => null);
        try {
          const res = await api("PATCH", `/admins/${seg(a.name)}`, body);
          if (self) await ctx.refreshSession();
          await load();
          return { admin: res.admin, changed: Object.keys(body) };
        } catch (err) {
          return fail(form, err, (k) => ({ role: role.id, password: "admin-edit-password" })[k]);
        }
      },
    });
    if (r) {
      notify("success", `Changed ${r.changed.map((k) => (k === "role" ? `the role (now ${r.admin.role})` : "the password")).join(" and ")} of ${r.admin.name}.`);
      if (self && r.changed.includes("role") && !ctx.can("admins")) ctx.route();
    }
  }

  async function removeAdmin(a) {
    const ok = await confirmAction({
      title: "Remove administrator",
      message: ["Remove the administrator ", h("strong", null, a.name), ` (${a.role})? Their sessions end and their API tokens are deleted.`],
      confirmLabel: "Remove administrator",
      focusAfter: () => addBtn,
      action: async () => {
        await api("DELETE", `/admins/${seg(a.name)}`);
        await load();
      },
    });
    if (ok) notify("success", `Removed administrator ${a.name}.`);
  }

  async function createToken() {
    const name = select("token-admin", admins.map((a) => [a.name, `${a.name} (${a.role})`]), ctx.session.username);
    const role = select("token-role", [["", "Same as the administrator"], ...ROLES], "");
    const days = input("token-expires", { type: "number", min: "1", max: "3650", step: "1", inputmode: "numeric", class: "input-num", placeholder: "never" });
    const r = await modal({
      title: "Create API token",
      content: [
        field("Administrator", name, { key: "name", hint: "The token acts for this administrator." }),
        field("Role", role, { key: "role", hint: "At most the administrator's own role." }),
        field("Expires after (days)", days, { key: "expires_days", hint: "1 to 3650 days; empty for no expiry." }),
      ],
      submitLabel: "Create token",
      focusAfter: () => tokenBtn,
      onSubmit: async (form) => {
        const body = { name: name.value };
        if (role.value) body.role = role.value;
        const d = days.value.trim();
        if (d) body.expires_days = /^\d+$/.test(d) ? Number(d) : d;
        try {
          const res = await api("POST", "/tokens", body);
          await load();
          return res.token;
        } catch (err) {
          return fail(form, err, (k) => ({ name: name.id, role: role.id, expires_days: days.id })[k]);
        }
      },
    });
    if (r) await showSecret(r);
  }

  async function showSecret(t) {
    const secret = h("textarea", { id: "token-secret", readonly: true, rows: "2", class: "input-secret", spellcheck: "false" }, t.secret);
    secret.addEventListener("focus", () => secret.select());
    const copied = h("span", { class: "muted", "aria-live": "polite" });
    const copy = h("button", { type: "button", class: "btn btn-small" }, "Copy");
    copy.addEventListener("click", async () => {
      secret.select();
      try {
        await navigator.clipboard.writeText(t.secret);
        copied.textContent = "Copied.";
      } catch (e) {
        copied.textContent = "Selected: press Ctrl+C to copy.";
      }
    });
    await modal({
      title: "API token created",
      readOnly: true,
      cancelLabel: "Done",
      initialFocus: secret,
      focusAfter: () => tokenBtn,
      content: [
        h("div", { class: "banner banner-warning" }, "Copy the secret now: it is shown only this once and cannot be read again."),
        field("Secret", secret, { key: "secret" }),
        h("div", { class: "copy-row" }, copy, copied),
        h("dl", { class: "facts" }, h("dt", null, "Token id"), h("dd", null, t.id), h("dt", null, "Administrator"), h("dd", null, t.admin), h("dt", null, "Role"), h("dd", null, t.role), h("dt", null, "Expires"), h("dd", null, t.expires ? fmtTime(t.expires) : "Never")),
      ],
    });
    notify("success", `Created API token ${t.id} for ${t.admin}.`);
  }

  async function deleteToken(t) {
    const ok = await confirmAction({
      title: "Delete API token",
      message: ["Delete the API token ", h("strong", null, t.id), ` of ${t.admin}? Scripts that use it are refused from now on.`],
      confirmLabel: "Delete token",
      focusAfter: () => tokenBtn,
      action: async () => {
        await api("DELETE", `/tokens/${seg(t.id)}`);
        await load();
      },
    });
    if (ok) notify("success", `Deleted API token ${t.id}.`);
  }

  await load();
  return null;
}
