// lib.mjs - helpers for the control panel's browser tests: a private fedgated (from
// $FG_BUILD_DIR, default /work/main/build) on a loopback address of 127.0.0.51..59 with
// every protocol listener off, a fresh SQLite store, administrators made with
// `fedgatectl admin add`, and Debian's Chromium driven by playwright-core.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync, existsSync, openSync, closeSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = path.resolve(here, "../../web");
export const BUILD_DIR = process.env.FG_BUILD_DIR || "/work/main/build";
export const CTL = path.join(BUILD_DIR, "fedgatectl");
export const DAEMON = path.join(BUILD_DIR, "fedgated");
export const CHROMIUM = process.env.FG_CHROMIUM || "/usr/bin/chromium";
export const SHOTS = path.join(here, "screenshots");

export const ADMINS = {
  boss: { role: "server-admin", password: "Boss-pw-123456" },
  adm: { role: "administrator", password: "Adm-pw-1234567" },
  vic: { role: "viewer", password: "Vic-pw-1234567" },
};

// Exact texts of SPEC section 2.
export const MSG = {
  R3: "SASL needs TLS: set TLS to required or optional, or set SASL to not-supported if this partner cannot do TLS.",
  R2: "Nothing could authenticate this partner: with SASL not-supported, dialback must be true.",
  W1: "With TLS optional, a partner that declines TLS cannot authenticate (SASL needs TLS and dialback is not allowed here): set TLS to required.",
  W2: "Dialback is never used while SASL is required.",
};

function env(extra = {}) {
  const e = { ...process.env, LC_ALL: "C.UTF-8", ...extra };
  delete e.SUDO_USER;
  delete e.FEDGATE_CONFIG;
  return e;
}

function portOpen(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 500 });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
  });
}

// A port that is free on this address right now.
function freePort(host) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Gate {
  constructor(ip) {
    this.ip = ip;
    this.dir = mkdtempSync(path.join(os.tmpdir(), "fg-web-"));
    this.conf = path.join(this.dir, "fedgate.conf");
    this.proc = null;
  }

  ctl(...args) {
    const p = spawnSync(CTL, ["--config", this.conf, ...args.map(String)], { cwd: this.dir, env: env(), encoding: "utf8", timeout: 30000 });
    return { code: p.status, stdout: p.stdout, stderr: p.stderr };
  }

  ctlJson(...args) {
    const r = this.ctl("--json", ...args);
    return { code: r.code, doc: r.stdout.trim() ? JSON.parse(r.stdout) : null, stderr: r.stderr };
  }

  addAdmin(name, role, password) {
    const f = path.join(this.dir, `${name}.pw`);
    writeFileSync(f, `${password}\n`, { mode: 0o600 });
    const r = this.ctl("admin", "add", name, "--role", role, "--password-file", f);
    if (r.code !== 0) throw new Error(`admin add ${name}: ${r.stderr}`);
  }

  partners() {
    const r = this.ctlJson("partner", "list");
    if (r.code !== 0) throw new Error(`partner list: ${r.stderr}`);
    return r.doc.partners;
  }

  partner(domain) {
    return this.partners().find((p) => p.domain === domain) || null;
  }

  async start() {
    for (const b of [CTL, DAEMON]) if (!existsSync(b)) throw new Error(`${b} is not built (set FG_BUILD_DIR)`);
    this.port = await freePort(this.ip);
    writeFileSync(
      this.conf,
      `[server]\ndomains = home.test\nstore = sqlite:${this.dir}/fg.db\nstate_dir = ${this.dir}\n` +
        `[listen]\nc2s = off\nc2s_tls = off\ns2s = off\ns2s_tls = off\nadmin = ${this.ip}:${this.port}\n` +
        `[tls]\ncert_dir = ${this.dir}/tls\n`,
    );
    for (const [name, a] of Object.entries(ADMINS)) this.addAdmin(name, a.role, a.password);
    this.logPath = path.join(this.dir, "fedgated.log");
    const fd = openSync(this.logPath, "w");
    this.proc = spawn(DAEMON, ["--config", this.conf], {
      cwd: this.dir,
      env: env({ FG_ADMIN_WEB_DIR: WEB_DIR }),
      stdio: ["ignore", fd, fd],
    });
    closeSync(fd);
    // a test runner that dies must not leave the daemon behind
    const proc = this.proc;
    process.once("exit", () => {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    });
    let exited = null;
    this.proc.once("exit", (code) => {
      exited = code;
    });
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (exited !== null) throw new Error(`fedgated exited ${exited}:\n${this.log()}`);
      if (await portOpen(this.ip, this.port)) {
        this.url = `http://${this.ip}:${this.port}/`;
        return this;
      }
      await sleep(50);
    }
    throw new Error(`fedgated did not listen on ${this.ip}:${this.port}\n${this.log()}`);
  }

  // fedgated writes its first heartbeat shortly after the admin listener is up; until then
  // GET /status says running: false. Tests that look at the status wait for it.
  async waitHeartbeat() {
    const call = await apiSession(this, "boss");
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      const r = await call("GET", "/status");
      if (r.status === 200 && r.json.daemon.running) return;
      await sleep(100);
    }
    throw new Error("fedgated wrote no heartbeat within 10 s");
  }

  log() {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch (e) {
      return "";
    }
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const gone = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      // a clean exit is the daemon's own business (its tests check it); here a hang after
      // SIGTERM must not slow the suite down, so it is noted and killed
      const t = setTimeout(() => {
        console.warn(`fedgated (pid ${this.proc.pid}) did not exit within 5 s of SIGTERM; killing it`);
        this.proc.kill("SIGKILL");
      }, 5000);
      await gone;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Debian's Chromium, headless; the flags keep it off the network. Playwright gives every
// launch a fresh, empty --user-data-dir of its own (a temporary directory it removes on
// close), so the profile is new each run.
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

export function shotPath(name) {
  mkdirSync(SHOTS, { recursive: true });
  return path.join(SHOTS, `${name}.png`);
}

// Opens the panel and logs in through the form.
export async function login(page, gate, name) {
  await page.goto(gate.url);
  await page.locator("#login-user").fill(name);
  await page.locator("#login-pass").fill(ADMINS[name].password);
  await page.locator("#login-pass").press("Enter");
  await page.locator("#topbar .who-name").filter({ hasText: name }).waitFor();
}

// Records what a page must never do: script errors, CSP refusals, requests to anything but
// the daemon, and changes sent without the X-CSRF-Token header.
export function watch(page, gate) {
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource: the server responded with a status of (401|403|404|409|422|400)/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(gate.url) && !url.startsWith("data:")) problems.push(`request outside the daemon: ${url}`);
    if (url.includes("/api/") && !["GET", "HEAD"].includes(r.method())) {
      const h = r.headers();
      const isLogin = r.method() === "POST" && url.endsWith("/api/v1/session");
      if (!isLogin && !h["x-csrf-token"]) problems.push(`${r.method()} ${url} without X-CSRF-Token`);
    }
  });
  return problems;
}

// The accessible description of a control: the text of the elements its aria-describedby
// names (where the panel puts the error beside a field).
export async function description(locator) {
  return locator.evaluate((el) =>
    (el.getAttribute("aria-describedby") || "")
      .split(/\s+/)
      .filter(Boolean)
      .map((id) => {
        const d = document.getElementById(id);
        return d && !d.hidden ? d.textContent : "";
      })
      .join(" "),
  );
}

// A JSON API client for set-up steps that the test does not drive through the panel.
export async function apiSession(gate, name) {
  const base = `${gate.url}api/v1`;
  const r = await fetch(`${base}/session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: name, password: ADMINS[name].password }),
    signal: AbortSignal.timeout(10000),
  });
  if (r.status !== 200) throw new Error(`login ${name}: ${r.status}`);
  const cookie = r.headers.get("set-cookie").split(";")[0];
  const { csrf_token: csrf } = await r.json();
  return async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { Cookie: cookie, "X-CSRF-Token": csrf, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  };
}
