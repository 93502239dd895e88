// app.js - the panel's shell: login and logout (GET/POST/DELETE /api/v1/session), the
// hash router (#/partners, #/gateway, #/users, #/admins, #/audit), the top bar, and the
// /status poller that the partners page and the daemon indicator share. Pages live in
// their own modules and are given a context (session, role checks, status feed).

import { api, setCsrf, setUnauthorizedHandler } from "./api.js";
import { h, clear, clearNotices, notify, field, input, clearErrors, showErrors } from "./ui.js";
import * as partners from "./partners.js";
import * as gateway from "./gateway.js";
import * as users from "./users.js";
import * as admins from "./admins.js";
import * as audit from "./audit.js";

const ROUTES = [
  { path: "partners", nav: "Federated partners", short: "Partners", title: "XMPP Federated Partners", page: partners },
  { path: "gateway", nav: "Gateway settings", short: "Gateway", title: "Gateway settings", page: gateway },
  { path: "users", nav: "Users", short: "Users", title: "Users", page: users },
  { path: "admins", nav: "Administrators", short: "Admin", title: "Administrators and API tokens", page: admins },
  { path: "audit", nav: "Audit log", short: "Audit", title: "Audit log", page: audit },
];

const STATUS_EVERY_MS = 4000;
// Polling stops after this long without a key press or pointer action, so that the
// server's 30-minute idle timeout still ends a session nobody is using.
const IDLE_STOP_MS = 25 * 60 * 1000;

let session = null; // {username, role, csrf_token}
let cleanup = null;
let renderSeq = 0;
let lastActivity = Date.now();
let statusTimer = null;
let lastStatus = null;
const statusSubs = new Set();

const main = () => document.getElementById("main");

/* ---------- roles ---------- */

// What the logged-in role may change (doc/admin-api.md, "Routes and roles").
function can(what) {
  if (!session) return false;
  if (what === "write") return session.role === "server-admin" || session.role === "administrator";
  if (what === "admins") return session.role === "server-admin";
  return false;
}

/* ---------- status feed ---------- */

// One polling loop at a time: starting or stopping bumps the generation, and a loop whose
// generation is old ends at its next step (also when its request was still under way).
let pollGen = 0;

function startPolling() {
  stopPolling();
  pollStatus(pollGen);
}

function stopPolling() {
  pollGen += 1;
  clearTimeout(statusTimer);
  statusTimer = null;
}

async function pollStatus(gen) {
  if (gen !== pollGen || !session) return;
  const active = Date.now() - lastActivity < IDLE_STOP_MS;
  if (!document.hidden && active) {
    try {
      const s = await api("GET", "/status");
      if (gen !== pollGen) return;
      lastStatus = s;
      showDaemon(s.daemon);
      for (const fn of statusSubs) fn(s);
    } catch (e) {
      if (e.status === 401 || gen !== pollGen) return;
      showDaemon(null, e.message);
    }
  }
  // hidden or idle: look again later, without asking the server
  statusTimer = setTimeout(() => pollStatus(gen), STATUS_EVERY_MS);
}

function onStatus(fn) {
  statusSubs.add(fn);
  if (lastStatus) fn(lastStatus);
  return () => statusSubs.delete(fn);
}

function showDaemon(daemon, error) {
  const el = document.getElementById("daemon");
  if (!el) return;
  clear(el);
  let cls = "unknown";
  let text = "Status unknown";
  let title = error || "";
  if (daemon) {
    cls = daemon.running ? "up" : "down";
    text = daemon.running ? "Daemon running" : "Daemon not running";
    title = `Last heartbeat: ${daemon.heartbeat || "never"}`;
  }
  el.className = `daemon-state daemon-${cls}`;
  el.title = title;
  el.append(h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "daemon-text" }, text));
}

/* ---------- session ---------- */

function setSession(s) {
  session = s;
  setCsrf(s ? s.csrf_token : null);
}

function sessionEnded(err) {
  if (!session) return;
  setSession(null);
  closeDialogs();
  const text = err && err.message ? err.message : "your session has ended: log in again";
  showLogin({ kind: "warning", text: `${text[0].toUpperCase()}${text.slice(1)}.`.replace(/\.\.$/, ".") });
}

function closeDialogs() {
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
}

async function refreshSession() {
  const s = await api("GET", "/session");
  setSession(s);
  renderTopbar();
  return s;
}

function showLogin(message) {
  stopPage();
  stopPolling();
  document.getElementById("topbar").hidden = true;
  document.body.classList.add("is-login");
  document.title = "Log in · fedgate";
  clearNotices();
  const m = clear(main());
  const user = input("login-user", { autocomplete: "username", autocapitalize: "none", required: true });
  const pass = input("login-pass", { type: "password", autocomplete: "current-password", required: true });
  const summary = h("div", { class: "form-summary", role: "alert", hidden: true });
  const btn = h("button", { type: "submit", class: "btn btn-primary btn-block" }, "Log in");
  const form = h(
    "form",
    { class: "login-form", novalidate: true },
    summary,
    field("User name", user, { key: "username" }),
    field("Password", pass, { key: "password" }),
    btn,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    if (!user.value.trim() || !pass.value) {
      showErrors(form, { message: "Enter your user name and password.", fields: [!user.value.trim() ? "username" : "password"] }, (k) => (k === "username" ? user.id : pass.id), "");
      (!user.value.trim() ? user : pass).focus();
      return;
    }
    btn.disabled = true;
    btn.textContent = "Logging in…";
    try {
      const s = await api("POST", "/session", { username: user.value.trim(), password: pass.value }, { quiet401: true });
      setSession(s);
      startApp(true);
    } catch (err) {
      const shown = showErrors(form, err, (k) => (k === "username" ? user.id : k === "password" ? pass.id : null), "Login failed:");
      pass.value = "";
      (shown || pass).focus();
      btn.disabled = false;
      btn.textContent = "Log in";
    }
  });
  m.append(
    h(
      "div",
      { class: "login-wrap" },
      h(
        "section",
        { class: "login-card", "aria-labelledby": "login-title" },
        h("div", { class: "login-brand" }, h("img", { src: "favicon.svg", alt: "", width: "36", height: "36" }), h("span", null, "fedgate")),
        h("h1", { id: "login-title", tabindex: "-1" }, "Log in to the control panel"),
        h("p", { class: "muted" }, "XMPP federation gateway administration"),
        message ? h("div", { class: `notice notice-${message.kind} notice-inline`, role: "status" }, h("div", { class: "notice-text" }, message.text)) : null,
        form,
      ),
    ),
  );
  user.focus();
}

async function logout() {
  try {
    await api("DELETE", "/session", undefined, { quiet401: true });
  } catch (e) {
    if (e.status !== 401) {
      notify("error", `Logout failed: ${e.message}`);
      return;
    }
  }
  setSession(null);
  showLogin({ kind: "info", text: "You have logged out." });
}

/* ---------- shell and router ---------- */

function renderTopbar() {
  const bar = document.getElementById("topbar");
  bar.hidden = false;
  document.body.classList.remove("is-login");
  const nav = clear(document.getElementById("nav"));
  const cur = currentRoute();
  for (const r of ROUTES) {
    // the short label replaces the long one on narrow windows (CSS); both name the page
    nav.append(h("li", null, h("a", { href: `#/${r.path}`, "aria-current": r === cur ? "page" : null, "aria-label": r.nav }, h("span", { class: "nav-long" }, r.nav), h("span", { class: "nav-short", "aria-hidden": "true" }, r.short))));
  }
  const who = clear(document.getElementById("who"));
  who.append(h("span", { class: "who-name" }, session.username), " ", h("span", { class: `role-badge role-${session.role}` }, session.role));
}

function currentRoute() {
  const m = /^#\/([a-z]+)/.exec(location.hash);
  return ROUTES.find((r) => m && r.path === m[1]) || ROUTES[0];
}

function stopPage() {
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  renderSeq += 1;
}

async function route(focus) {
  if (!session) return;
  stopPage();
  const seq = renderSeq;
  const r = currentRoute();
  renderTopbar();
  clearNotices();
  document.title = `${r.title} · fedgate`;
  const m = clear(main());
  const ctx = {
    session,
    can,
    onStatus,
    refreshSession,
    route: () => route(true),
    stale: () => seq !== renderSeq,
  };
  const c = await r.page.render(m, ctx, r);
  if (seq !== renderSeq) {
    if (typeof c === "function") c();
    return;
  }
  cleanup = c;
  if (focus) {
    const h1 = m.querySelector("h1");
    if (h1) h1.focus();
  }
}

function startApp(focus) {
  if (!/^#\/[a-z]+/.test(location.hash)) history.replaceState(null, "", "#/partners");
  renderTopbar();
  lastStatus = null;
  route(focus);
  startPolling();
}

async function boot() {
  setUnauthorizedHandler(sessionEnded);
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => {
    if (session && /^#\/[a-z]+/.test(location.hash)) route(true);
  });
  for (const ev of ["keydown", "pointerdown"]) {
    document.addEventListener(ev, () => {
      const wasIdle = Date.now() - lastActivity >= IDLE_STOP_MS;
      lastActivity = Date.now();
      if (wasIdle && session) startPolling();
    }, { passive: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && session) startPolling();
  });
  try {
    const s = await api("GET", "/session", undefined, { quiet401: true });
    setSession(s);
    startApp(false);
  } catch (e) {
    showLogin(e.status === 401 ? null : { kind: "error", text: e.message });
  }
}

boot();
