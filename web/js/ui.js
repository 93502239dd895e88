// ui.js - small DOM helpers shared by the pages: element builder (text only, never HTML
// strings, so names and descriptions from the store cannot inject markup), notices in an
// aria-live region, modal dialogs with focus handling, form fields with their error
// slots, a sortable table that stacks into cards on narrow windows, and formatters.

let uid = 0;
export function nextId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// h("button", {class: "btn", onclick: fn, "aria-label": "x"}, "text", node, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v);
      } else if (k === "class") {
        el.className = v;
      } else if (k === "dataset") {
        Object.assign(el.dataset, v);
      } else if (k === "value") {
        el.value = v;
      } else if (k === "checked" || k === "selected") {
        el[k] = Boolean(v);
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/* ---------- notices ---------- */

const noticeTimers = new WeakMap();

// kind: success | info | warning | error. Success and info notices go away after a while;
// warnings and errors stay until dismissed or until the page changes.
export function notify(kind, content, opts = {}) {
  const box = document.getElementById("notices");
  if (!box) return null;
  const close = h("button", { type: "button", class: "notice-close", "aria-label": "Dismiss notice" }, "×");
  const n = h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "notice-icon", "aria-hidden": "true" }, ICONS[kind] || "i"),
    h("div", { class: "notice-text" }, content),
    close,
  );
  close.addEventListener("click", () => dismiss(n));
  // a new notice replaces the passing ones (success, info); warnings and errors stay
  for (const old of box.querySelectorAll(".notice-success, .notice-info")) dismiss(old);
  box.append(n);
  const timeout = opts.timeout ?? (kind === "success" || kind === "info" ? 8000 : 0);
  if (timeout > 0) noticeTimers.set(n, setTimeout(() => dismiss(n), timeout));
  return n;
}

const ICONS = { success: "✓", info: "i", warning: "!", error: "!" };

function dismiss(n) {
  clearTimeout(noticeTimers.get(n));
  n.remove();
}

export function clearNotices() {
  const box = document.getElementById("notices");
  if (box) for (const n of [...box.children]) dismiss(n);
}

/* ---------- form fields ---------- */

// A labelled control with a hint and an error slot. control must carry an id.
export function field(label, control, opts = {}) {
  const id = control.id;
  const parts = [];
  const hint = opts.hint ? h("p", { class: "hint", id: `${id}-hint` }, opts.hint) : null;
  const err = h("p", { class: "field-error", id: `${id}-err`, hidden: true });
  if (hint) control.setAttribute("aria-describedby", hint.id);
  const lab = h("label", { for: id }, label, opts.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
  if (control.type === "checkbox") {
    parts.push(h("div", { class: "check" }, control, lab));
  } else {
    parts.push(lab, control);
  }
  if (hint) parts.push(hint);
  parts.push(err);
  return h("div", { class: `field${opts.wide ? " field-wide" : ""}${control.type === "checkbox" ? " field-check" : ""}`, dataset: { field: opts.key || "" } }, parts);
}

export function input(id, attrs = {}) {
  return h("input", { id, name: id, type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
}

export function select(id, options, value, attrs = {}) {
  return h(
    "select",
    { id, name: id, ...attrs },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, text);
    }),
  );
}

export function checkbox(id, checked, attrs = {}) {
  return h("input", { id, name: id, type: "checkbox", checked, ...attrs });
}

// Removes every error shown in a form (field slots and the summary).
export function clearErrors(root) {
  for (const p of root.querySelectorAll(".field-error")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const c of root.querySelectorAll("[aria-invalid]")) {
    c.removeAttribute("aria-invalid");
    const ids = (c.getAttribute("aria-describedby") || "").split(/\s+/).filter((x) => x && !x.endsWith("-err"));
    if (ids.length) c.setAttribute("aria-describedby", ids.join(" "));
    else c.removeAttribute("aria-describedby");
  }
  for (const f of root.querySelectorAll(".field.has-error")) f.classList.remove("has-error");
  const s = root.querySelector(".form-summary");
  if (s) {
    s.hidden = true;
    clear(s);
  }
}

// Shows an API error beside the fields it names. map(key) gives the control id of a JSON
// key (or null); leadText replaces the summary's first words. Returns the first control marked, so the caller can focus it.
export function showErrors(root, err, map, leadText) {
  const text = err.rule ? `${err.rule}: ${err.message}` : err.message;
  let first = null;
  for (const key of err.fields || []) {
    const id = map(key);
    const control = id && root.querySelector(`#${CSS.escape(id)}`);
    // controls side by side (TLS and SASL) share one slot below them, so a rule that names
    // both is written once
    const group = control && control.closest("[data-error-group]");
    const slot = group ? group.querySelector(":scope > .field-error") : id && root.querySelector(`#${CSS.escape(id)}-err`);
    if (!control || !slot) continue;
    clear(slot);
    if (err.rule) slot.append(h("strong", null, `${err.rule}: `), err.message);
    else slot.textContent = err.message;
    slot.hidden = false;
    control.setAttribute("aria-invalid", "true");
    const ids = new Set((control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean));
    ids.add(slot.id);
    control.setAttribute("aria-describedby", [...ids].join(" "));
    const f = control.closest(".field");
    if (f) f.classList.add("has-error");
    if (!first) first = control;
  }
  // The summary at the top repeats a refusal by a rule (it says what kind of error it is)
  // and carries every error that names no field shown here.
  const s = root.querySelector(".form-summary");
  if (s && (!first || err.status === 422)) {
    clear(s);
    const lead = leadText !== undefined ? leadText : err.status === 422 ? "Not saved: refused by a rule." : err.status === 403 ? "Not allowed." : "Not saved.";
    if (lead) s.append(h("strong", null, lead), " ");
    s.append(text);
    if (err.status === 403) s.append(" ", "Your role does not allow this change.");
    s.hidden = false;
  }
  return first;
}

/* ---------- dialogs ---------- */

// Opens a modal dialog holding a form. Resolves with the value the submit handler returned
// (anything but undefined/false closes it), or null when cancelled (Cancel, Escape).
// opts: title, content (node or array), submitLabel, cancelLabel, danger, wide,
// onSubmit(form) async, initialFocus (element or selector), focusAfter (fn -> element),
// readOnly (no submit button; the cancel button says Close).
export function modal(opts) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId("dlg-title");
    const summary = h("div", { class: "form-summary", role: "alert", hidden: true });
    const cancel = h("button", { type: "button", class: opts.readOnly ? "btn btn-primary" : "btn", "data-action": "cancel" }, opts.cancelLabel || (opts.readOnly ? "Close" : "Cancel"));
    const submit = opts.readOnly
      ? null
      : h("button", { type: "submit", class: `btn ${opts.danger ? "btn-danger" : "btn-primary"}`, "data-action": "submit" }, opts.submitLabel || "Save");
    const form = h(
      "form",
      { class: "dlg-form", novalidate: true },
      h("header", { class: "dlg-head" }, h("h2", { id: titleId }, opts.title)),
      h("div", { class: "dlg-body" }, summary, opts.content),
      h("footer", { class: "dlg-foot" }, submit, cancel),
    );
    const dlg = h("dialog", { class: `dlg${opts.wide ? " dlg-wide" : ""}`, "aria-labelledby": titleId }, form);
    let result = null;
    let busy = false;

    cancel.addEventListener("click", () => dlg.close());
    dlg.addEventListener("cancel", (e) => {
      // Escape: discard; but not in the middle of a request whose answer is still coming
      if (busy) e.preventDefault();
    });
    form.addEventListener("keydown", (e) => {
      // Ctrl/Cmd+Enter submits from a multi-line field too
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && submit) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (busy || !opts.onSubmit) return;
      busy = true;
      submit.disabled = true;
      form.setAttribute("aria-busy", "true");
      clearErrors(form);
      try {
        const r = await opts.onSubmit(form);
        if (r !== undefined && r !== false) {
          result = r;
          busy = false;
          dlg.close();
          return;
        }
      } finally {
        busy = false;
        if (submit) submit.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
      // give the caller's re-render a moment, then put focus back where it makes sense
      setTimeout(() => {
        const usable = opener && opener !== document.body && opener.isConnected && !opener.closest("[hidden]");
        let target = usable ? opener : null;
        if (!target && opts.focusAfter) target = opts.focusAfter(result);
        if (!target) target = document.querySelector("main h1");
        if (target) target.focus();
      }, 0);
    });
    document.body.append(dlg);
    dlg.showModal();
    let first = opts.initialFocus;
    if (typeof first === "string") first = form.querySelector(first);
    if (!first) first = form.querySelector(".dlg-body input:not([readonly]):not([type=hidden]), .dlg-body select, .dlg-body textarea, .dlg-body button") || cancel;
    first.focus();
  });
}

// Asks before a destructive change. message: node(s) naming the object. Resolves true when
// confirmed and action() succeeded; action errors are shown in the dialog.
export function confirmAction({ title, message, confirmLabel, action, focusAfter }) {
  return modal({
    focusAfter,
    title,
    content: h("p", { class: "confirm-text" }, message),
    submitLabel: confirmLabel,
    danger: true,
    initialFocus: "[data-action=cancel]",
    onSubmit: async (form) => {
      try {
        await action();
        return true;
      } catch (err) {
        showErrors(form, err, () => null);
        return false;
      }
    },
  }).then((r) => r === true);
}

/* ---------- tables ---------- */

// A table whose column headers sort it. columns: [{key, label, sort(row) -> string|number
// (omit for an unsortable column), cell(row) -> node|string, class}]. update(rows) renders.
export function sortableTable({ label, columns, sort, emptyText, rowAttrs }) {
  let state = sort || { key: columns[0].key, dir: 1 };
  let rows = [];
  const ths = new Map();
  const headRow = h("tr");
  for (const col of columns) {
    let th;
    if (col.sort) {
      const btn = h("button", { type: "button", class: "sort-btn", dataset: { sort: col.key } }, col.label, h("span", { class: "sort-ind", "aria-hidden": "true" }));
      btn.addEventListener("click", () => {
        state = { key: col.key, dir: state.key === col.key ? -state.dir : 1 };
        render();
      });
      th = h("th", { scope: "col", class: col.class }, btn);
    } else {
      th = h("th", { scope: "col", class: col.class }, col.srLabel ? h("span", { class: "sr-only" }, col.srLabel) : col.label);
    }
    ths.set(col.key, th);
    headRow.append(th);
  }
  const tbody = h("tbody");
  const table = h("table", { class: "data-table" }, label ? h("caption", { class: "sr-only" }, label) : null, h("thead", null, headRow), tbody);

  function render() {
    for (const col of columns) {
      const th = ths.get(col.key);
      if (!col.sort) continue;
      if (state.key === col.key) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    const col = columns.find((c) => c.key === state.key);
    const sorted = [...rows];
    if (col && col.sort) {
      sorted.sort((a, b) => {
        const x = col.sort(a);
        const y = col.sort(b);
        const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true, sensitivity: "base" });
        return c * state.dir;
      });
    }
    clear(tbody);
    if (!sorted.length) {
      tbody.append(h("tr", { class: "empty-row" }, h("td", { colspan: columns.length }, emptyText || "Nothing to show.")));
      return;
    }
    for (const row of sorted) {
      const tr = h("tr", rowAttrs ? rowAttrs(row) : null);
      for (const c of columns) {
        tr.append(h("td", { class: c.class, "data-label": c.label }, h("div", { class: "cell" }, c.cell(row))));
      }
      tbody.append(tr);
    }
  }

  return {
    el: table,
    tbody,
    update(newRows) {
      rows = newRows;
      render();
    },
  };
}

/* ---------- formatting ---------- */

// "2026-11-26T12:00:00Z" -> "2026-11-26 12:00:00 UTC"
export function fmtTime(t) {
  if (!t) return "—";
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(t);
  return m ? `${m[1]} ${m[2]} UTC` : t;
}

// Case-insensitive match of a filter against strings: a shell glob when it has * ? or [,
// else a substring.
export function matcher(filter) {
  const f = filter.trim().toLowerCase();
  if (!f) return () => true;
  if (/[*?[]/.test(f)) {
    try {
      const re = new RegExp(
        "^" +
          f.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".").replace(/\[!/g, "[^") +
          "$",
      );
      return (...values) => values.some((v) => re.test(String(v).toLowerCase()));
    } catch (e) {
      // an unfinished bracket: fall back to a plain substring match
    }
  }
  return (...values) => values.some((v) => String(v).toLowerCase().includes(f));
}

// A domain name that may wrap after its dots (long names in narrow columns) instead of in
// the middle of a label.
export function domainText(name) {
  const parts = String(name).split(".");
  const out = [];
  parts.forEach((p, i) => {
    if (i) out.push(".", document.createElement("wbr"));
    out.push(p);
  });
  return out;
}

export function pageHeader(title, ...extra) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, title), extra.length ? h("div", { class: "page-actions" }, extra) : null);
}
