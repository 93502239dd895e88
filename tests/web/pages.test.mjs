// pages.test.mjs - the other pages of the control panel in Debian's Chromium against the
// real fedgated: gateway settings, users, administrators and API tokens, what an
// administrator and a viewer may see, a 403 from the API handled by the panel, the audit
// page with its filters, logout, and screenshots of every page at 1280×800 and 400×800.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Gate, launchBrowser, login, watch, description, shotPath, apiSession, MSG } from "./lib.mjs";

let gate;
let browser;
let ctx;
let page;
let problems;

const dialog = () => page.locator("dialog[open]");
const go = async (p, name, heading) => {
  await p.locator("#nav a", { hasText: name }).click();
  await p.locator("h1", { hasText: heading || name }).waitFor();
};

before(async () => {
  gate = await new Gate("127.0.0.52").start();
  for (const args of [
    ["orbit.test", "--type", "federated", "--description", "Orbit Systems — main XMPP service", "--additional-domains", "chat.orbit.test,orbit-mail.test"],
    ["jabber.example.test", "--tls", "optional", "--sasl", "not-supported", "--description", "Legacy server without certificates"],
    ["münchen.test", "--type", "public-verified", "--subdomains", "true", "--connection-limit", "50"],
    ["partner-with-a-rather-long-domain-name.example.test", "--description", "A very long description that goes on about the partner's many services, offices and contacts, to see how the table copes with it."],
  ]) {
    const r = gate.ctl("partner", "new", ...args);
    assert.equal(r.code, 0, r.stderr);
  }
  await gate.waitHeartbeat();
  browser = await launchBrowser();
  ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  ctx.setDefaultTimeout(10000);
  page = await ctx.newPage();
  problems = watch(page, gate);
  await login(page, gate, "boss");
});

after(async () => {
  if (browser) await browser.close();
  if (gate) await gate.stop();
});

test("gateway settings: an out-of-range value is refused beside its field; a change is saved", async () => {
  await go(page, "Gateway settings");
  const ka = page.locator("#gw-keepalive_interval");
  await page.waitForFunction(() => document.getElementById("gw-keepalive_interval").value !== "");
  assert.equal(await ka.inputValue(), "300");
  await ka.fill("5");
  await page.locator("#gw-save").click();
  await page.locator("#gw-keepalive_interval[aria-invalid=true]").waitFor();
  assert.match(await description(ka), /keepalive_interval: expected an integer from 10 to 86400/);
  assert.equal(gate.ctlJson("gateway", "show").doc.gateway.keepalive_interval, 300);
  await page.screenshot({ path: shotPath("gateway-error-1280") });

  await ka.fill("120");
  await page.locator("#gw-unlisted_domains").selectOption("public-verified");
  await page.locator("#gw-log_message_bodies").check();
  await ka.press("Enter");
  await page.locator(".notice-success", { hasText: "Saved gateway settings" }).waitFor();
  assert.equal(await ka.getAttribute("aria-invalid"), null);
  const g = gate.ctlJson("gateway", "show").doc.gateway;
  assert.equal(g.keepalive_interval, 120);
  assert.equal(g.unlisted_domains, "public-verified");
  assert.equal(g.log_message_bodies, true);
  assert.equal(g.connection_limit, 1000, "only changed keys are sent");

  // Discard puts back what is stored
  await page.locator("#gw-connection_limit").fill("42");
  await page.locator("#gw-reset").click();
  assert.equal(await page.locator("#gw-connection_limit").inputValue(), "1000");
  assert.equal(gate.ctlJson("gateway", "show").doc.gateway.connection_limit, 1000);
});

test("users: add (with a refused JID and a password typo first), set a password, remove", async () => {
  await go(page, "Users");
  await page.locator("#user-add").click();
  await page.locator("#user-jid").fill("alice@elsewhere.test");
  await page.locator("#user-new-password").fill("Alice-pw-1");
  await page.locator("#user-new-password2").fill("Alice-pw-2");
  await page.locator("#user-new-password2").press("Enter");
  await page.locator("#user-new-password2[aria-invalid=true]").waitFor();
  assert.match(await description(page.locator("#user-new-password2")), /The two passwords differ/);
  await page.locator("#user-new-password2").fill("Alice-pw-1");
  await page.locator("#user-new-password2").press("Enter");
  await page.locator("#user-jid[aria-invalid=true]").waitFor();
  assert.match(await description(page.locator("#user-jid")), /its domain is not one of the hosted domains/);
  await page.screenshot({ path: shotPath("users-add-error-1280") });
  await page.locator("#user-jid").fill("alice@home.test");
  await page.locator("#user-jid").press("Enter");
  await dialog().waitFor({ state: "detached" });
  await page.locator('tr[data-jid="alice@home.test"]').waitFor();
  assert.deepEqual(gate.ctlJson("user", "list").doc.users, [{ jid: "alice@home.test" }]);

  await page.getByRole("button", { name: "Set the password of alice@home.test" }).click();
  await page.locator("#user-set-password").fill("Alice-new-pw");
  await page.locator("#user-set-password2").fill("Alice-new-pw");
  await dialog().locator("button", { hasText: "Set password" }).click();
  await page.locator(".notice-success", { hasText: "Set a new password for alice@home.test" }).waitFor();

  await page.getByRole("button", { name: "Remove alice@home.test" }).click();
  assert.match(await dialog().textContent(), /Remove the user alice@home\.test\?/);
  await dialog().locator("button", { hasText: "Remove user" }).click();
  await page.locator('tr[data-jid="alice@home.test"]').waitFor({ state: "detached" });
  assert.deepEqual(gate.ctlJson("user", "list").doc.users, []);
  // a user who stays, for the screenshots
  await page.locator("#user-add").click();
  await page.locator("#user-jid").fill("bob@home.test");
  await page.locator("#user-new-password").fill("Bob-pw-12345");
  await page.locator("#user-new-password2").fill("Bob-pw-12345");
  await page.locator("#user-new-password2").press("Enter");
  await page.locator('tr[data-jid="bob@home.test"]').waitFor();
});

test("administrators: add, change role and password, remove; a token's secret is shown once", async () => {
  await go(page, "Administrators", "Administrators and API tokens");
  await page.locator("#admin-add").click();
  await page.locator("#admin-name").fill("carol");
  await page.locator("#admin-role").selectOption("viewer");
  await page.locator("#admin-new-password").fill("Carol-pw-123");
  await page.locator("#admin-new-password2").fill("Carol-pw-123");
  await page.locator("#admin-new-password2").press("Enter");
  await page.locator('tr[data-admin="carol"]').waitFor();
  const roleOf = (n) => gate.ctlJson("admin", "list").doc.admins.find((a) => a.name === n)?.role;
  assert.equal(roleOf("carol"), "viewer");

  await page.getByRole("button", { name: "Change carol" }).click();
  await page.locator("#admin-edit-role").selectOption("administrator");
  await page.locator("#admin-edit-password").fill("Carol-pw-456");
  await page.locator("#admin-edit-password2").fill("Carol-pw-456");
  await dialog().locator("button", { hasText: "Save" }).click();
  await page.locator(".notice-success", { hasText: /the role \(now administrator\) and the password of carol/ }).waitFor();
  assert.equal(roleOf("carol"), "administrator");

  // the last server-admin cannot be demoted (A1), and the panel says so in the dialog
  await page.getByRole("button", { name: "Change boss" }).click();
  await page.locator("#admin-edit-role").selectOption("viewer");
  await dialog().locator("button", { hasText: "Save" }).click();
  await page.locator("#admin-edit-role[aria-invalid=true]").waitFor();
  assert.match(await description(page.locator("#admin-edit-role")), /A1: The last server-admin cannot be removed or demoted/);
  await page.keyboard.press("Escape");
  await dialog().waitFor({ state: "detached" });
  assert.equal(roleOf("boss"), "server-admin");

  await page.locator("#token-add").click();
  await page.locator("#token-admin").selectOption("carol");
  await page.locator("#token-role").selectOption("viewer");
  await page.locator("#token-expires").fill("30");
  await dialog().locator("button", { hasText: "Create token" }).click();
  await dialog().locator("h2", { hasText: "API token created" }).waitFor();
  const secret = await page.locator("#token-secret").inputValue();
  assert.match(secret, /^fgt_[0-9a-f]+_[0-9a-f]+$/);
  assert.match(await dialog().textContent(), /shown only this once/);
  await page.screenshot({ path: shotPath("token-secret-1280") });
  const id = secret.split("_")[1];
  // the secret works as a bearer token, with the role it was given
  const r = await fetch(`${gate.url}api/v1/admins`, { headers: { Authorization: `Bearer ${secret}` }, signal: AbortSignal.timeout(10000) });
  assert.equal(r.status, 200);
  await dialog().locator("button", { hasText: "Done" }).click();
  await dialog().waitFor({ state: "detached" });
  await page.waitForFunction(() => !document.querySelector("dialog"));
  const tokenRow = page.locator(`tr[data-token="${id}"]`);
  await tokenRow.waitFor();
  assert.match(await tokenRow.innerText(), /carol[\s\S]*viewer/);
  assert.ok(!(await page.content()).includes(secret), "the secret is not on the page any more");

  await page.getByRole("button", { name: `Delete token ${id}` }).click();
  assert.match(await dialog().textContent(), new RegExp(`Delete the API token ${id} of carol\\?`));
  await dialog().locator("button", { hasText: "Delete token" }).click();
  await tokenRow.waitFor({ state: "detached" });

  await page.getByRole("button", { name: "Remove carol" }).click();
  assert.match(await dialog().textContent(), /Remove the administrator carol/);
  await dialog().locator("button", { hasText: "Remove administrator" }).click();
  await page.locator('tr[data-admin="carol"]').waitFor({ state: "detached" });
  assert.equal(roleOf("carol"), undefined);
});

test("an administrator manages partners but sees no administrator or token controls; a viewer changes nothing", async () => {
  for (const [name, write] of [["adm", true], ["vic", false]]) {
    const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    c.setDefaultTimeout(10000);
    const p = await c.newPage();
    const probs = watch(p, gate);
    await login(p, gate, name);
    await p.locator("tr.partner-row").first().waitFor();
    assert.equal(await p.locator("#partner-new").count(), write ? 1 : 0, `${name}: New`);
    assert.equal(await p.locator("[data-action=edit]").count() > 0, write, `${name}: Edit`);
    await go(p, "Administrators", "Administrators and API tokens");
    await p.locator('tr[data-admin="boss"]').waitFor();
    assert.equal(await p.locator("#admin-add, #token-add").count(), 0, `${name}: admin controls`);
    assert.equal(await p.locator("tr[data-admin] button").count(), 0);
    assert.match(await p.locator(".banner-info").textContent(), /Only a server admin/);
    await go(p, "Users");
    await p.locator('tr[data-jid="bob@home.test"]').waitFor();
    assert.equal(await p.locator("#user-add").count(), write ? 1 : 0, `${name}: Add user`);
    assert.equal(await p.locator('tr[data-jid="bob@home.test"] button').count(), write ? 2 : 0);
    await go(p, "Gateway settings");
    assert.equal(await p.locator("#gw-save").count(), write ? 1 : 0, `${name}: Save`);
    if (!write) {
      assert.equal(await p.locator("#gw-keepalive_interval").getAttribute("readonly"), "");
      assert.ok(await p.locator("#gw-unlisted_domains").isDisabled());
      await p.screenshot({ path: shotPath("gateway-viewer-1280") });
    }
    assert.deepEqual(probs, [], name);
    await c.close();
  }
});

test("a 403 from the API is shown in the form when the role changed behind the panel's back", async () => {
  const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  c.setDefaultTimeout(10000);
  const p = await c.newPage();
  await login(p, gate, "adm");
  await p.locator("#partner-new").click();
  await p.locator("#pf-domain").fill("late.test");
  const boss = await apiSession(gate, "boss");
  assert.equal((await boss("PATCH", "/admins/adm", { role: "viewer" })).status, 200);
  try {
    await p.locator("dialog[open] button", { hasText: "Commit" }).click();
    const summary = p.locator("dialog[open] .form-summary");
    await summary.filter({ hasText: "Not allowed" }).waitFor();
    assert.match(await summary.textContent(), /Your role does not allow this change/);
    assert.equal(gate.partner("late.test"), null);
  } finally {
    assert.equal((await boss("PATCH", "/admins/adm", { role: "administrator" })).status, 200);
    await c.close();
  }
});

test("a session ended on the server (new password) brings the login form back with a message", async () => {
  const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  c.setDefaultTimeout(10000);
  const p = await c.newPage();
  await login(p, gate, "adm");
  await p.locator("tr.partner-row").first().waitFor();
  const boss = await apiSession(gate, "boss");
  try {
    assert.equal((await boss("PATCH", "/admins/adm", { password: "Adm-new-pw-999" })).status, 200);
    // the next status poll (every 4 s) gets 401
    await p.locator("#login-user").waitFor({ timeout: 12000 });
    assert.match(await p.locator(".login-card").textContent(), /The session has expired or ended: log in again/);
    assert.equal(await p.locator("#topbar").isVisible(), false);
  } finally {
    assert.equal((await boss("PATCH", "/admins/adm", { password: "Adm-pw-1234567" })).status, 200);
    await c.close();
  }
});

test("the audit page lists the changes, filters them, and shows before and after", async () => {
  await go(page, "Audit log");
  const rows = () => page.locator("tbody tr[data-action]").evaluateAll((trs) => trs.map((t) => `${t.dataset.action} ${t.dataset.object}`));
  await page.locator('tr[data-action="gateway.update"]').waitFor();
  const all = await rows();
  for (const want of ["gateway.update gateway", "user.add user:alice@home.test", "user.passwd user:alice@home.test", "user.remove user:alice@home.test", "admin.add admin:carol", "admin.update admin:carol", "admin.passwd admin:carol", "admin.passwd admin:adm", "token.create", "token.delete", "admin.remove admin:carol", "partner.create partner:orbit.test"]) {
    assert.ok(all.some((r) => r.startsWith(want)), `${want} in ${all.join(" | ")}`);
  }
  const gw = page.locator('tr[data-action="gateway.update"]').first();
  const change = await gw.locator(".changes").innerText();
  assert.match(change, /keepalive_interval: 300 → 120/);
  assert.match(change, /unlisted_domains: block → public-verified/);
  assert.match(await gw.innerText(), /admin:boss/);
  await page.screenshot({ path: shotPath("audit-1280") });

  await page.locator("#audit-action").fill("user.*");
  await page.locator("#audit-action").press("Enter");
  await page.waitForFunction(() => [...document.querySelectorAll("tbody tr[data-action]")].every((t) => t.dataset.action.startsWith("user.")));
  assert.deepEqual((await rows()).map((r) => r.split(" ")[0]).sort(), ["user.add", "user.add", "user.passwd", "user.remove"]);
  assert.match(page.url(), /#\/audit\?action=user\.\*/);

  await page.locator("#audit-action").fill("");
  await page.locator("#audit-actor").fill("cli:*");
  await page.locator("#audit-object").fill("partner:*");
  await page.locator("#audit-object").press("Enter");
  await page.waitForFunction(() => [...document.querySelectorAll("tbody tr[data-action]")].every((t) => t.dataset.object.startsWith("partner:")));
  assert.equal((await rows()).length, 4);

  await page.locator("#audit-since").fill("yesterday-ish");
  await page.locator("#audit-since").press("Enter");
  await page.locator("#audit-since[aria-invalid=true]").waitFor();
  assert.match(await description(page.locator("#audit-since")), /since: expected RFC 3339/);
  await page.locator("#audit-since").fill(new Date().toISOString().slice(0, 10));
  await page.locator("#audit-since").press("Enter");
  await page.waitForFunction(() => !document.querySelector("#audit-since[aria-invalid]"));
  assert.equal((await rows()).length, 4);
  await page.locator("#audit-clear").click();
  await page.waitForFunction((n) => document.querySelectorAll("tbody tr[data-action]").length > n, 4);
  assert.deepEqual(problems, []);
});

test("screenshots of every page at 1280×800 and 400×800", async () => {
  for (const [w, tag] of [[1280, "1280"], [400, "400"]]) {
    const c = await browser.newContext({ viewport: { width: w, height: 800 } });
    c.setDefaultTimeout(10000);
    const p = await c.newPage();
    const probs = watch(p, gate);
    await p.goto(gate.url);
    await p.locator("#login-user").waitFor();
    await p.screenshot({ path: shotPath(`login-${tag}`) });
    await login(p, gate, "boss");
    await p.locator('tr.partner-row .status .st-line').first().waitFor();
    await p.screenshot({ path: shotPath(`partners-${tag}`) });
    await p.screenshot({ path: shotPath(`partners-${tag}-full`), fullPage: true });
    // the layout must not scroll sideways, whatever the width
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${tag}: the page scrolls sideways by ${overflow}px`);

    await p.locator("#partner-new").click();
    await p.locator("#pf-domain").fill("shot.test");
    await p.locator("#pf-tls").selectOption("not-supported");
    await p.locator("dialog[open] button", { hasText: "Commit" }).click();
    await p.locator("#pf-tls[aria-invalid=true]").waitFor();
    assert.ok((await description(p.locator("#pf-sasl"))).includes(MSG.R3));
    await p.screenshot({ path: shotPath(`partner-form-R3-${tag}`) });
    await p.keyboard.press("Escape");
    await p.locator("dialog[open]").waitFor({ state: "detached" });

    for (const [nav, h1, name] of [["Gateway settings", "Gateway settings", "gateway"], ["Users", "Users", "users"], ["Administrators", "Administrators and API tokens", "admins"], ["Audit log", "Audit log", "audit"]]) {
      await go(p, nav, h1);
      await p.locator("main .table-wrap tbody tr, main form.settings-form").first().waitFor();
      await p.screenshot({ path: shotPath(`${name}-${tag}`) });
      await p.screenshot({ path: shotPath(`${name}-${tag}-full`), fullPage: true });
      const ov = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(ov <= 0, `${tag} ${name}: the page scrolls sideways by ${ov}px`);
    }
    assert.deepEqual(probs, [], tag);
    await c.close();
  }
});

test("logout ends the session: the login form is back, and the API answers 401 to the old cookie", async () => {
  await page.locator("#logout").click();
  await page.locator("#login-user").waitFor();
  assert.match(await page.locator(".login-card").textContent(), /You have logged out/);
  assert.equal(await page.locator("#topbar").isVisible(), false);
  const status = await page.evaluate(async () => (await fetch("/api/v1/session")).status);
  assert.equal(status, 401);
  await page.reload();
  await page.locator("#login-user").waitFor();
  assert.deepEqual(problems, []);
});

// Last, because the block also holds for the client address that the other tests use.
test("too many failed logins: the 429 answer is shown with its wait time", async () => {
  const summary = page.locator(".login-form .form-summary");
  let text = "";
  for (let i = 0; i < 7 && !/rate|too many|try again/i.test(text); i++) {
    await page.locator("#login-user").fill("nobody");
    await page.locator("#login-pass").fill(`wrong-${i}`);
    await page.locator("#login-pass").press("Enter");
    await page.waitForFunction(() => !document.querySelector(".login-form button[type=submit]").disabled);
    text = await summary.textContent();
  }
  assert.match(text, /Login failed:.*\(try again in \d+ s\)/);
});
