// users.js - the hosted users (GET/POST /api/v1/users, PUT/DELETE /users/{jid}): list with a
// filter, add with a password, set a password, remove after a confirmation naming the JID.
// Passwords are typed twice; the server checks everything else (JID rules, length).

import { api, seg } from "./api.js";
import { h, notify, field, input, showErrors, modal, confirmAction, sortableTable, matcher, pageHeader, clearErrors } from "./ui.js";

// Two password fields that must agree; returns [fields, check(form) -> password|null].
export function passwordPair(prefix, label) {
  const pw = input(`${prefix}-password`, { type: "password", autocomplete: "new-password" });
  const pw2 = input(`${prefix}-password2`, { type: "password", autocomplete: "new-password" });
  const fields = [field(label || "Password", pw, { key: "password" }), field("Repeat the password", pw2, { key: "password2" })];
  function check(form) {
    if (pw.value !== pw2.value) {
      clearErrors(form);
      showErrors(form, { message: "The two passwords differ.", fields: ["password2"] }, () => pw2.id, "Not saved.");
      pw2.focus();
      return null;
    }
    return pw.value;
  }
  return [fields, check, pw];
}

export async function render(main, ctx) {
  const canWrite = ctx.can("write");
  let users = [];
  const addBtn = canWrite ? h("button", { type: "button", class: "btn btn-primary", id: "user-add", onclick: () => addUser() }, h("span", { "aria-hidden": "true" }, "+ "), "Add user") : null;
  const filter = input("user-filter", { type: "search", placeholder: "alice@…" });
  const count = h("p", { class: "count", "aria-live": "polite" });
  const table = sortableTable({
    label: "Users",
    columns: [
      { key: "jid", label: "JID", sort: (u) => u.jid, cell: (u) => h("span", { class: "jid" }, u.jid) },
      {
        key: "actions", label: "Actions", srLabel: "Actions", class: "col-actions",
        cell: (u) => canWrite
          ? h(
            "div",
            { class: "row-actions" },
            h("button", { type: "button", class: "btn btn-small", dataset: { fkey: `pw:${u.jid}` }, "aria-label": `Set the password of ${u.jid}`, onclick: () => setPassword(u) }, "Set password"),
            h("button", { type: "button", class: "btn btn-small btn-danger-ghost", dataset: { fkey: `rm:${u.jid}` }, "aria-label": `Remove ${u.jid}`, onclick: () => removeUser(u) }, "Remove"),
          )
          : "",
      },
    ],
    rowAttrs: (u) => ({ dataset: { jid: u.jid } }),
  });

  main.append(
    pageHeader("Users", addBtn),
    h("p", { class: "page-intro" }, "Accounts on this server's hosted domains. Passwords are stored only as SCRAM keys."),
    h("div", { class: "toolbar", role: "search", "aria-label": "Filter users" }, h("div", { class: "tool" }, h("label", { for: filter.id }, "Filter"), filter), count),
    h("div", { class: "table-wrap table-narrow" }, table.el),
  );
  filter.addEventListener("input", rerender);

  function rerender() {
    const m = matcher(filter.value);
    const rows = users.filter((u) => m(u.jid));
    table.update(rows);
    const td = table.tbody.querySelector(".empty-row td");
    if (td) td.textContent = users.length ? "No user matches the filter." : "No users yet.";
    count.textContent = rows.length === users.length ? `${users.length} user${users.length === 1 ? "" : "s"}` : `Showing ${rows.length} of ${users.length} users`;
  }

  async function load() {
    try {
      users = (await api("GET", "/users")).users;
      rerender();
    } catch (e) {
      if (e.status !== 401) notify("error", `The users could not be loaded: ${e.message}`);
    }
  }

  async function addUser() {
    const jid = input("user-jid", { placeholder: "alice@example.org", autocomplete: "off", inputmode: "email" });
    const [pwFields, check] = passwordPair("user-new");
    const r = await modal({
      title: "Add user",
      content: [field("JID", jid, { key: "jid", required: true, hint: "A bare JID on one of the hosted domains: local@domain." }), ...pwFields],
      submitLabel: "Add user",
      focusAfter: () => addBtn,
      onSubmit: async (form) => {
        const password = check(form);
        if (password === null) return false;
        try {
          const res = await api("POST", "/users", { jid: jid.value.trim(), password });
          await load();
          return res.user;
        } catch (err) {
          if (err.status === 401) return false;
          const first = showErrors(form, err, (k) => (k === "jid" ? jid.id : k === "password" ? "user-new-password" : null));
          if (first) first.focus();
          return false;
        }
      },
    });
    if (r) notify("success", `Added user ${r.jid}.`);
  }

  async function setPassword(u) {
    const [pwFields, check] = passwordPair("user-set", "New password");
    const r = await modal({
      title: `Set the password of ${u.jid}`,
      content: pwFields,
      submitLabel: "Set password",
      onSubmit: async (form) => {
        const password = check(form);
        if (password === null) return false;
        try {
          return (await api("PUT", `/users/${seg(u.jid)}`, { password })).user;
        } catch (err) {
          if (err.status === 401) return false;
          const first = showErrors(form, err, (k) => (k === "password" ? "user-set-password" : null));
          if (first) first.focus();
          return false;
        }
      },
    });
    if (r) notify("success", `Set a new password for ${r.jid}.`);
  }

  async function removeUser(u) {
    const ok = await confirmAction({
      title: "Remove user",
      message: ["Remove the user ", h("strong", null, u.jid), "? The account, its roster and its stored messages are deleted."],
      confirmLabel: "Remove user",
      focusAfter: () => addBtn || filter,
      action: async () => {
        await api("DELETE", `/users/${seg(u.jid)}`);
        await load();
      },
    });
    if (ok) notify("success", `Removed user ${u.jid}.`);
  }

  await load();
  return null;
}
