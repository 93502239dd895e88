// partners.js - the "XMPP Federated Partners" page (SPEC sections 1, 2 and 6): the sortable,
// filterable list with live status from GET /status, and the partner form (New, Edit,
// double-click) whose Commit shows a refusal beside the offending fields or the warnings
// as a notice. No rule is checked here: the server's policy module decides everything.

import { api, seg } from "./api.js";
import {
  h, clear, notify, field, input, select, checkbox, showErrors, modal, confirmAction,
  sortableTable, fmtTime, matcher, pageHeader, nextId, domainText,
} from "./ui.js";

export const TYPES = [
  ["federated", "Federated"],
  ["public-verified", "Public verified"],
  ["public-unverified", "Public unverified"],
];
const NEG = [
  ["required", "Required"],
  ["optional", "Optional"],
  ["not-supported", "Not supported"],
];
const label = (list, v) => (list.find((x) => x[0] === v) || [v, v])[1];

const AUTH = { "sasl-external": "SASL EXTERNAL", dialback: "dialback", none: "not authenticated" };

// JSON key -> id of the control that shows its error
const FIELD_IDS = {
  domain: "pf-domain",
  description: "pf-description",
  additional_domains: "pf-additional_domains",
  subdomains: "pf-subdomains",
  partner_type: "pf-partner_type",
  tls: "pf-tls",
  sasl: "pf-sasl",
  dialback: "pf-dialback",
  keepalive: "pf-keepalive",
  connection_limit: "pf-connection_limit",
  proxy_fqdn: "pf-proxy_fqdn",
};

// Today's times without the date, older ones with it.
function shortTime(t) {
  const full = fmtTime(t);
  const today = new Date().toISOString().slice(0, 10);
  return t && t.startsWith(today) ? full.slice(11) : full;
}

export async function render(main, ctx) {
  const canWrite = ctx.can("write");
  let partners = [];
  let partnersJson = "";
  const status = new Map();
  let daemon = null;
  let gatewayDefault = null;

  const newBtn = canWrite
    ? h("button", { type: "button", class: "btn btn-primary", id: "partner-new", onclick: () => openForm(null) }, h("span", { "aria-hidden": "true" }, "+ "), "New partner")
    : null;
  const filter = input("partner-filter", { type: "search", placeholder: "Domain or description", title: "Matches domains and descriptions; * and ? work as in shell patterns" });
  const typeFilter = select("partner-type-filter", [["", "All types"], ...TYPES], "");
  const count = h("p", { class: "count", id: "partner-count", "aria-live": "polite" });
  const daemonBanner = h("div", { class: "banner banner-warning", hidden: true });
  const loadError = h("div", { class: "banner banner-error", role: "alert", hidden: true });

  const columns = [
    { key: "domain", label: "Primary domain", sort: (p) => p.domain_unicode, cell: domainCell, class: "col-domain" },
    { key: "type", label: "Partner type", sort: (p) => label(TYPES, p.partner_type), cell: (p) => h("span", { class: `badge type-${p.partner_type}` }, label(TYPES, p.partner_type)) },
    { key: "tls", label: "TLS", sort: (p) => p.tls, cell: (p) => negCell(p.tls) },
    { key: "sasl", label: "SASL", sort: (p) => p.sasl, cell: (p) => negCell(p.sasl) },
    { key: "dialback", label: "Dialback", sort: (p) => (p.dialback ? 0 : 1), cell: (p) => (p.dialback ? "Yes" : "No") },
    { key: "additional", label: "Additional domains", sort: (p) => p.additional_domains_unicode.join(" "), cell: additionalCell, class: "col-additional" },
    { key: "description", label: "Description", sort: (p) => p.description, cell: (p) => (p.description ? h("span", { class: "desc", title: p.description }, p.description) : h("span", { class: "muted" }, "—")), class: "col-desc" },
    { key: "status", label: "Status", sort: (p) => -connectedCount(p.domain), cell: (p) => h("div", { class: "status", dataset: { statusFor: p.domain } }, statusContent(p.domain)), class: "col-status" },
    { key: "actions", label: "Actions", srLabel: "Actions", cell: actionsCell, class: "col-actions" },
  ];
  const table = sortableTable({
    label: "Federated partners",
    columns,
    sort: { key: "domain", dir: 1 },
    emptyText: "",
    rowAttrs: (p) => ({
      dataset: { domain: p.domain },
      class: "partner-row",
      ondblclick: (e) => {
        if (e.target.closest("button, a, input")) return;
        const sel = window.getSelection();
        if (sel) sel.removeAllRanges();
        openForm(p);
      },
    }),
  });

  main.append(
    pageHeader("XMPP Federated Partners", newBtn),
    h("p", { class: "page-intro" }, "The XMPP domains this gateway federates with, how their server-to-server streams must authenticate, and how their streams are doing right now.", canWrite ? " Double-click a row to edit it." : ""),
    loadError,
    daemonBanner,
    h(
      "div",
      { class: "toolbar", role: "search", "aria-label": "Filter partners" },
      h("div", { class: "tool" }, h("label", { for: filter.id }, "Filter"), filter),
      h("div", { class: "tool" }, h("label", { for: typeFilter.id }, "Partner type"), typeFilter),
      count,
    ),
    h("div", { class: "table-wrap" }, table.el),
  );

  filter.addEventListener("input", rerender);
  typeFilter.addEventListener("change", rerender);

  function filtered() {
    const m = matcher(filter.value);
    const t = typeFilter.value;
    return partners.filter(
      (p) => (!t || p.partner_type === t) && m(p.domain, p.domain_unicode, p.description, ...p.additional_domains, ...p.additional_domains_unicode),
    );
  }

  // Renders the rows again, keeping the focus on the same control when it still exists.
  function rerender() {
    const a = document.activeElement;
    const key = a && a.dataset ? a.dataset.fkey : null;
    const rows = filtered();
    table.update(rows);
    if (!rows.length) {
      const td = table.tbody.querySelector(".empty-row td");
      if (td) td.textContent = partners.length ? "No partner matches the filter." : canWrite ? "No partners yet. Use New partner to add the first one." : "No partners yet.";
    }
    count.textContent = rows.length === partners.length ? `${partners.length} partner${partners.length === 1 ? "" : "s"}` : `Showing ${rows.length} of ${partners.length} partners`;
    if (key && !a.isConnected) {
      const el = main.querySelector(`[data-fkey="${CSS.escape(key)}"]`);
      if (el) el.focus();
    }
  }

  async function load() {
    try {
      const r = await api("GET", "/partners");
      loadError.hidden = true;
      const json = JSON.stringify(r.partners);
      if (json !== partnersJson) {
        partnersJson = json;
        partners = r.partners;
        rerender();
      }
    } catch (e) {
      if (e.status === 401) return;
      loadError.textContent = `The partner list could not be loaded: ${e.message}`;
      loadError.hidden = false;
    }
  }

  /* ----- cells ----- */

  function domainCell(p) {
    return [
      h("strong", { class: "domain" }, domainText(p.domain_unicode)),
      p.domain !== p.domain_unicode ? h("div", { class: "muted small" }, domainText(p.domain)) : null,
      p.subdomains ? h("div", null, h("span", { class: "badge badge-plain", title: "Every subdomain is accepted too" }, "+ subdomains")) : null,
    ];
  }

  function negCell(v) {
    return h("span", { class: `neg neg-${v}` }, label(NEG, v));
  }

  function additionalCell(p) {
    if (!p.additional_domains_unicode.length) return h("span", { class: "muted" }, "—");
    return h("ul", { class: "plain" }, p.additional_domains_unicode.map((d) => h("li", null, domainText(d))));
  }

  function actionsCell(p) {
    if (!canWrite) {
      return h("div", { class: "row-actions" }, h("button", { type: "button", class: "btn btn-small", dataset: { fkey: `view:${p.domain}` }, "aria-label": `Details of ${p.domain_unicode}`, onclick: () => openForm(p) }, "Details"));
    }
    return h(
      "div",
      { class: "row-actions" },
      h("button", { type: "button", class: "btn btn-small", dataset: { fkey: `edit:${p.domain}`, action: "edit" }, "aria-label": `Edit ${p.domain_unicode}`, onclick: () => openForm(p) }, "Edit"),
      h("button", { type: "button", class: "btn btn-small btn-danger-ghost", dataset: { fkey: `delete:${p.domain}`, action: "delete" }, "aria-label": `Delete ${p.domain_unicode}`, onclick: () => remove(p) }, "Delete"),
    );
  }

  function connectedCount(domain) {
    const s = status.get(domain);
    return s ? (s.streams || []).filter((x) => x.state === "established").length : 0;
  }

  function statusContent(domain) {
    const s = status.get(domain);
    if (!s) return h("span", { class: "muted" }, "…");
    const streams = s.streams || [];
    const est = streams.filter((x) => x.state === "established").length;
    const pending = streams.length - est;
    let state = "idle";
    let text = "No streams";
    if (est) {
      state = "up";
      text = `${est} connected stream${est === 1 ? "" : "s"}`;
      if (pending) text += `, ${pending} opening`;
    } else if (pending) {
      state = "pending";
      text = `${pending} stream${pending === 1 ? "" : "s"} opening`;
    }
    if (daemon && !daemon.running) {
      state = "idle";
      text = "Daemon not running";
    }
    const out = [h("div", { class: "st-line" }, h("span", { class: `dot dot-${state}`, "aria-hidden": "true" }), text)];
    if (streams.length && !(daemon && !daemon.running)) {
      out.push(
        h(
          "ul",
          { class: "plain streams" },
          streams.map((x) =>
            h(
              "li",
              { title: `${x.local_domain} ${x.direction === "in" ? "←" : "→"} ${x.remote_domain}, ${x.state} since ${fmtTime(x.since)}` },
              `${x.direction === "in" ? "In" : "Out"} · ${AUTH[x.auth] || x.auth} · ${x.tls || "no TLS"}${x.state === "established" ? "" : ` · ${x.state}`}`,
            ),
          ),
        ),
      );
    }
    if (s.last_error) {
      const e = s.last_error;
      out.push(
        h(
          "div",
          { class: "st-error", title: `${fmtTime(e.time)}${e.fix ? `\nFix: ${e.fix}` : ""}` },
          h("span", { class: "st-error-label" }, "Last error"),
          " ",
          h("time", { class: "muted small", datetime: e.time }, shortTime(e.time)),
          h("div", null, e.rule ? `${e.rule}: ` : "", e.message),
          e.fix ? h("div", { class: "small" }, "Fix: ", e.fix) : null,
        ),
      );
    }
    if (s.refused_stanzas) out.push(h("div", { class: "muted small" }, `${s.refused_stanzas} refused stanza${s.refused_stanzas === 1 ? "" : "s"}`));
    return out;
  }

  function updateStatusCells() {
    for (const el of main.querySelectorAll("[data-status-for]")) {
      clear(el).append(...[statusContent(el.dataset.statusFor)].flat());
    }
  }

  function onStatus(s) {
    if (ctx.stale()) return;
    daemon = s.daemon;
    status.clear();
    for (const p of s.partners || []) status.set(p.domain, p);
    if (daemon && !daemon.running) {
      daemonBanner.textContent = `fedgated is not running (last heartbeat: ${fmtTime(daemon.heartbeat)}). The status column is not live.`;
      daemonBanner.hidden = false;
    } else {
      daemonBanner.hidden = true;
    }
    updateStatusCells();
    // partners added, changed or removed elsewhere (fedgatectl, another administrator);
    // the rows are drawn again only when the list differs
    load();
  }

  /* ----- the form ----- */

  async function gatewayLimit() {
    if (gatewayDefault === null) {
      try {
        gatewayDefault = (await api("GET", "/gateway")).gateway.partner_connection_limit;
      } catch (e) {
        gatewayDefault = undefined;
      }
    }
    return gatewayDefault;
  }

  async function openForm(p) {
    const editing = Boolean(p);
    const readOnly = !canWrite;
    const v = p || {
      domain: "", description: "", additional_domains_unicode: [], subdomains: false,
      partner_type: "public-unverified", tls: "required", sasl: "optional", dialback: true,
      keepalive: true, connection_limit: null, proxy_fqdn: "",
    };
    const def = await gatewayLimit();
    const dis = readOnly ? { disabled: true } : {};

    const domain = input(FIELD_IDS.domain, { value: editing ? v.domain_unicode : "", readonly: editing || readOnly, required: true, placeholder: "partner.example", inputmode: "url" });
    const desc = h("textarea", { id: FIELD_IDS.description, name: "description", rows: "3", maxlength: "1024", readonly: readOnly }, v.description);
    const add = input(FIELD_IDS.additional_domains, { value: v.additional_domains_unicode.join(", "), readonly: readOnly, placeholder: "im.partner.example, partner.example.net" });
    const sub = checkbox(FIELD_IDS.subdomains, v.subdomains, dis);
    const type = select(FIELD_IDS.partner_type, TYPES, v.partner_type, dis);
    const tls = select(FIELD_IDS.tls, NEG, v.tls, dis);
    const sasl = select(FIELD_IDS.sasl, NEG, v.sasl, dis);
    const db = checkbox(FIELD_IDS.dialback, v.dialback, dis);
    const ka = checkbox(FIELD_IDS.keepalive, v.keepalive, dis);
    const limGroup = nextId("pf-limit");
    const limDefault = h("input", { type: "radio", id: "pf-limit-default", name: limGroup, value: "default", checked: v.connection_limit === null, ...dis });
    const limCustom = h("input", { type: "radio", id: "pf-limit-custom", name: limGroup, value: "custom", checked: v.connection_limit !== null, ...dis });
    const limNum = input(FIELD_IDS.connection_limit, { type: "number", min: "1", max: "65535", step: "1", inputmode: "numeric", value: v.connection_limit ?? "", readonly: readOnly, class: "input-num" });
    limNum.addEventListener("input", () => {
      limCustom.checked = true;
    });
    limCustom.addEventListener("change", () => limNum.focus());
    const proxy = input(FIELD_IDS.proxy_fqdn, { value: v.proxy_fqdn, readonly: readOnly, placeholder: "xmpp-proxy.partner.example:5269" });

    const limitField = h(
      "fieldset",
      { class: "field field-radios", dataset: { field: "connection_limit" } },
      h("legend", null, "Connection limit"),
      h("div", { class: "radio" }, limDefault, h("label", { for: limDefault.id }, def ? `Gateway default (${def})` : "Gateway default")),
      h(
        "div",
        { class: "radio radio-custom" },
        limCustom,
        h("label", { for: limCustom.id }, "At most"),
        h("label", { for: limNum.id, class: "sr-only" }, "Connection limit (streams, 1 to 65535)"),
        limNum,
        h("span", { class: "muted" }, "streams"),
      ),
      h("p", { class: "hint", id: `${limNum.id}-hint` }, "Streams to and from this partner at one time, 1 to 65535."),
      h("p", { class: "field-error", id: `${limNum.id}-err`, hidden: true }),
    );
    limNum.setAttribute("aria-describedby", `${limNum.id}-hint`);

    const content = h(
      "div",
      { class: "form-grid" },
      h(
        "fieldset",
        { class: "form-section" },
        h("legend", null, "Domains"),
        field("Primary domain", domain, { key: "domain", required: !editing, hint: editing ? "The primary domain cannot be changed: to rename a partner, create a new one and delete this one." : "The partner's XMPP domain. Internationalised names are accepted." }),
        field("Additional domains", add, { key: "additional_domains", hint: "Other domains of the same partner, separated by commas or spaces." }),
        field("Accept subdomains", sub, { key: "subdomains", hint: "Also accept every subdomain of these domains, such as the partner's conference service." }),
        field("Description", desc, { key: "description", hint: "At most 1024 characters." }),
      ),
      h(
        "fieldset",
        { class: "form-section" },
        h("legend", null, "Negotiation"),
        field("Partner type", type, { key: "partner_type", hint: "Federated: subscriptions approved, status text shared. Public verified: approved, status text stripped. Public unverified: requests wait for the user." }),
        h(
          "div",
          { class: "field-group", "data-error-group": "negotiation" },
          h("div", { class: "field-pair" }, field("TLS negotiation", tls, { key: "tls" }), field("SASL negotiation", sasl, { key: "sasl" })),
          h("p", { class: "field-error", id: "pf-tls-sasl-err", hidden: true }),
        ),
        field("Dialback negotiation", db, { key: "dialback", hint: "Server Dialback (XEP-0220): lets a partner authenticate through DNS when SASL EXTERNAL cannot." }),
        h("p", { class: "hint" }, "SASL EXTERNAL authenticates a partner by its certificate and needs TLS."),
      ),
      h(
        "fieldset",
        { class: "form-section form-section-wide" },
        h("legend", null, "Connection"),
        h(
          "div",
          { class: "field-row" },
          field("Keep-alive pings", ka, { key: "keepalive", hint: "Send an XEP-0199 ping on idle outbound streams, besides whitespace keep-alives." }),
          limitField,
          field("Proxy FQDN", proxy, { key: "proxy_fqdn", hint: "host or host:port to connect to instead of the DNS SRV lookup; empty for none." }),
        ),
      ),
    );

    const name = editing ? v.domain_unicode : "";
    const result = await modal({
      title: readOnly ? `Partner ${name}` : editing ? `Edit partner ${name}` : "New partner",
      content,
      wide: true,
      readOnly,
      submitLabel: "Commit",
      initialFocus: editing ? (readOnly ? "[data-action=cancel]" : add) : domain,
      focusAfter: () => (editing ? main.querySelector(`[data-fkey="${CSS.escape(`edit:${v.domain}`)}"]`) : null) || newBtn || filter,
      onSubmit: async (form) => {
        const lim = limNum.value.trim();
        const body = {
          description: desc.value,
          additional_domains: add.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean),
          subdomains: sub.checked,
          partner_type: type.value,
          tls: tls.value,
          sasl: sasl.value,
          dialback: db.checked,
          keepalive: ka.checked,
          // a value that is not a whole number goes to the server as it is, which answers
          // with the range beside the field
          connection_limit: limDefault.checked ? null : /^\d+$/.test(lim) ? Number(lim) : lim,
          proxy_fqdn: proxy.value.trim(),
        };
        try {
          const r = editing
            ? await api("PUT", `/partners/${seg(v.domain)}`, body)
            : await api("POST", "/partners", { domain: domain.value.trim(), ...body });
          partnersJson = "";
          await load();
          return r;
        } catch (err) {
          if (err.status === 401) return false;
          const first = showErrors(form, err, (k) => FIELD_IDS[k]);
          if (first) first.focus();
          return false;
        }
      },
    });
    if (result && result.partner) {
      const d = result.partner.domain_unicode;
      const warnings = result.warnings || [];
      if (warnings.length) {
        notify("warning", [
          h("p", null, `Saved partner ${d}, with ${warnings.length === 1 ? "a warning" : "warnings"}:`),
          h("ul", { class: "warnings" }, warnings.map((w) => h("li", { dataset: { rule: w.rule } }, h("strong", null, `${w.rule}: `), w.message))),
        ]);
      } else {
        notify("success", `${editing ? "Saved" : "Created"} partner ${d}.`);
      }
    }
  }

  async function remove(p) {
    const ok = await confirmAction({
      title: "Delete partner",
      message: [
        "Delete the partner ",
        h("strong", null, p.domain_unicode),
        p.domain !== p.domain_unicode ? ` (${p.domain})` : "",
        p.additional_domains_unicode.length ? ` and its additional domains ${p.additional_domains_unicode.join(", ")}` : "",
        "? Its streams are closed and its domains no longer federate with this gateway.",
      ],
      confirmLabel: "Delete partner",
      focusAfter: () => newBtn || filter,
      action: async () => {
        await api("DELETE", `/partners/${seg(p.domain)}`);
        await load();
      },
    });
    if (ok) notify("success", `Deleted partner ${p.domain_unicode}.`);
    else load();
  }

  await load();
  if (ctx.stale()) return null;
  return ctx.onStatus(onStatus);
}
