// partners.test.mjs - the "XMPP Federated Partners" page in Debian's Chromium against the
// real fedgated (SPEC sections 1, 2, 6): login, the list of partners made with fedgatectl,
// sorting and filtering, the form's refusals, warnings, edit, cancel and delete, keyboard
// use, the live status column, what a viewer sees, and the audit records of those changes.
// The tests run in order and share one daemon and one logged-in page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Gate, launchBrowser, login, watch, description, shotPath, MSG, ADMINS } from "./lib.mjs";

let gate;
let browser;
let page;
let problems;

const row = (domain) => page.locator(`tr[data-domain="${domain}"]`);
const dialog = () => page.locator("dialog[open]");
const domains = () => page.locator("tr.partner-row").evaluateAll((rows) => rows.map((r) => r.dataset.domain));

before(async () => {
  gate = await new Gate("127.0.0.51").start();
  const mk = (...args) => {
    const r = gate.ctl("partner", "new", ...args);
    assert.equal(r.code, 0, r.stderr);
  };
  mk("alpha.test", "--type", "federated", "--description", "Alpha Corp", "--additional-domains", "a2.test");
  mk("beta.test", "--tls", "optional", "--sasl", "not-supported", "--description", "Beta labs");
  mk("gamma.test", "--type", "public-verified", "--description", "Gamma research");
  mk("bücher.test", "--subdomains", "true", "--connection-limit", "50");
  await gate.waitHeartbeat();
  browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  ctx.setDefaultTimeout(10000);
  page = await ctx.newPage();
  problems = watch(page, gate);
});

after(async () => {
  if (browser) await browser.close();
  if (gate) await gate.stop();
});

test("login: a wrong password is refused with a message, the right one opens the partner list", async () => {
  await page.goto(gate.url);
  await page.locator("#login-user").fill("boss");
  await page.locator("#login-pass").fill("not-the-password");
  await page.locator("#login-pass").press("Enter");
  const summary = page.locator(".login-form .form-summary");
  await summary.waitFor();
  assert.match(await summary.textContent(), /Login failed: wrong user name or password/);
  assert.equal(await page.locator("#topbar").isVisible(), false);
  await page.screenshot({ path: shotPath("login-failed-1280") });

  await page.locator("#login-pass").fill(ADMINS.boss.password);
  await page.locator("#login-pass").press("Enter");
  await page.locator("h1", { hasText: "XMPP Federated Partners" }).waitFor();
  assert.match(await page.locator("#who").textContent(), /boss\s*server-admin/);
  assert.equal(await page.title(), "XMPP Federated Partners · fedgate");
});

test("the list shows the partners made with fedgatectl, with every column", async () => {
  await page.locator("tr.partner-row").first().waitFor();
  assert.deepEqual(await domains(), ["alpha.test", "beta.test", "xn--bcher-kva.test", "gamma.test"]);
  const cells = await row("alpha.test").locator("td").allInnerTexts();
  assert.deepEqual(cells.slice(0, 7).map((c) => c.trim()), ["alpha.test", "Federated", "Required", "Optional", "Yes", "a2.test", "Alpha Corp"]);
  const beta = await row("beta.test").locator("td").allInnerTexts();
  assert.deepEqual(beta.slice(1, 5).map((c) => c.trim()), ["Public unverified", "Optional", "Not supported", "Yes"]);
  const buecher = await row("xn--bcher-kva.test").locator("td.col-domain").innerText();
  assert.match(buecher, /bücher\.test/);
  assert.match(buecher, /xn--bcher-kva\.test/);
  assert.match(buecher, /subdomains/);
  // the live status column fills from GET /status
  await row("alpha.test").locator(".status", { hasText: "No streams" }).waitFor();
  assert.match(await page.locator("#daemon").textContent(), /Daemon running/);
  await page.screenshot({ path: shotPath("partners-1280") });
});

test("sorting by a column and filtering the list", async () => {
  const domainHead = page.locator("th", { has: page.locator("[data-sort=domain]") });
  assert.equal(await domainHead.getAttribute("aria-sort"), "ascending");
  await page.locator("[data-sort=domain]").click();
  assert.equal(await domainHead.getAttribute("aria-sort"), "descending");
  assert.deepEqual(await domains(), ["gamma.test", "xn--bcher-kva.test", "beta.test", "alpha.test"]);

  await page.locator("[data-sort=tls]").click(); // optional before required
  assert.equal((await domains())[0], "beta.test");
  await page.locator("[data-sort=type]").click(); // Federated, Public unverified, Public verified
  const byType = await domains();
  assert.equal(byType[0], "alpha.test");
  assert.equal(byType[3], "gamma.test");
  await page.locator("[data-sort=domain]").click();

  const filter = page.locator("#partner-filter");
  await filter.fill("gamma");
  assert.deepEqual(await domains(), ["gamma.test"]);
  assert.equal((await page.locator("#partner-count").textContent()).trim(), "Showing 1 of 4 partners");
  await filter.fill("a2.test"); // an additional domain finds its partner
  assert.deepEqual(await domains(), ["alpha.test"]);
  await filter.fill("*labs"); // a glob on the description
  assert.deepEqual(await domains(), ["beta.test"]);
  await filter.fill("bücher"); // the U-label
  assert.deepEqual(await domains(), ["xn--bcher-kva.test"]);
  await filter.fill("nothing-like-this");
  assert.deepEqual(await domains(), []);
  assert.match(await page.locator(".empty-row").textContent(), /No partner matches the filter/);
  await filter.fill("");
  await page.locator("#partner-type-filter").selectOption("public-verified");
  assert.deepEqual(await domains(), ["gamma.test"]);
  await page.locator("#partner-type-filter").selectOption("");
  assert.equal((await domains()).length, 4);
});

test("New with TLS not-supported and SASL optional is refused: R3 beside the TLS and SASL fields, nothing saved", async () => {
  await page.locator("#partner-new").click();
  await dialog().locator("h2", { hasText: "New partner" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "pf-domain");
  await page.locator("#pf-domain").fill("refused.test");
  await page.locator("#pf-tls").selectOption("not-supported");
  assert.equal(await page.locator("#pf-sasl").inputValue(), "optional");
  await dialog().locator("button", { hasText: "Commit" }).click();

  const tls = page.locator("#pf-tls");
  const sasl = page.locator("#pf-sasl");
  await page.locator("#pf-tls[aria-invalid=true]").waitFor();
  assert.equal(await sasl.getAttribute("aria-invalid"), "true");
  for (const c of [tls, sasl]) assert.ok((await description(c)).includes(`R3: ${MSG.R3}`), await description(c));
  // the message sits right below the two fields, not only at the top of the form
  const slot = page.locator("#pf-tls-sasl-err");
  const [sb, tb, ab] = [await slot.boundingBox(), await tls.boundingBox(), await sasl.boundingBox()];
  assert.ok(sb.y >= tb.y + tb.height && sb.y - (tb.y + tb.height) < 40, "the error is just below the fields");
  assert.ok(sb.x <= tb.x + 2 && sb.x + sb.width >= ab.x + ab.width - 2, "the error spans both fields");
  assert.equal(await page.locator("#pf-domain").getAttribute("aria-invalid"), null);
  assert.match(await dialog().locator(".form-summary").textContent(), /refused by a rule.*R3/);
  await page.screenshot({ path: shotPath("partner-refused-R3-1280") });

  assert.ok(await dialog().isVisible(), "the form stays open");
  assert.equal(gate.partner("refused.test"), null);
  await dialog().locator("button", { hasText: "Cancel" }).click();
  await dialog().waitFor({ state: "detached" });
  assert.equal(gate.partner("refused.test"), null);
  assert.equal(await row("refused.test").count(), 0);
});

test("New with TLS optional, SASL optional, dialback false is saved with the W1 notice", async () => {
  await page.locator("#partner-new").click();
  await page.locator("#pf-domain").fill("warn.test");
  await page.locator("#pf-description").fill("Saved with a warning");
  await page.locator("#pf-tls").selectOption("optional");
  await page.locator("#pf-dialback").uncheck();
  await dialog().locator("button", { hasText: "Commit" }).click();
  await dialog().waitFor({ state: "detached" });
  const notice = page.locator(".notice-warning");
  await notice.waitFor();
  const text = await notice.textContent();
  assert.match(text, /Saved partner warn\.test/);
  assert.ok(text.includes(`W1: ${MSG.W1}`), text);
  await row("warn.test").waitFor();
  await page.screenshot({ path: shotPath("partner-warning-W1-1280") });
  const p = gate.partner("warn.test");
  assert.equal(p.tls, "optional");
  assert.equal(p.sasl, "optional");
  assert.equal(p.dialback, false);
  assert.equal(p.description, "Saved with a warning");
  await notice.locator(".notice-close").click();
  assert.equal(await page.locator(".notice-warning").count(), 0);
});

test("after a reload the session (and its CSRF token) is still there; Edit by double-click saves every field", async () => {
  await page.reload();
  await row("gamma.test").waitFor();
  assert.equal(await page.locator("#login-user").count(), 0);

  await row("gamma.test").locator("td.col-desc").dblclick();
  await dialog().locator("h2", { hasText: "Edit partner gamma.test" }).waitFor();
  const domain = page.locator("#pf-domain");
  assert.equal(await domain.inputValue(), "gamma.test");
  assert.equal(await domain.getAttribute("readonly"), "");
  assert.equal(await page.locator("#pf-description").inputValue(), "Gamma research");
  assert.equal(await page.locator("#pf-partner_type").inputValue(), "public-verified");

  await page.locator("#pf-description").fill("Gamma research, EU");
  await page.locator("#pf-additional_domains").fill("g2.test, g3.test");
  await page.locator("#pf-subdomains").check();
  await page.locator("#pf-partner_type").selectOption("federated");
  await page.locator("#pf-sasl").selectOption("required");
  await page.locator("#pf-dialback").uncheck();
  await page.locator("#pf-keepalive").uncheck();
  await page.locator("#pf-connection_limit").fill("7");
  assert.ok(await page.locator("#pf-limit-custom").isChecked(), "typing a limit picks 'At most'");
  await page.locator("#pf-proxy_fqdn").fill("proxy.gamma.test:5269");
  await page.screenshot({ path: shotPath("partner-edit-1280") });
  await dialog().locator("button", { hasText: "Commit" }).click();
  await dialog().waitFor({ state: "detached" });
  await page.locator(".notice-success", { hasText: "Saved partner gamma.test" }).waitFor();
  const p = gate.partner("gamma.test");
  assert.deepEqual(
    { ...p, domain_unicode: undefined, additional_domains_unicode: undefined },
    {
      domain: "gamma.test", domain_unicode: undefined, description: "Gamma research, EU",
      additional_domains: ["g2.test", "g3.test"], additional_domains_unicode: undefined, subdomains: true,
      partner_type: "federated", tls: "required", sasl: "required", dialback: false, keepalive: false,
      connection_limit: 7, proxy_fqdn: "proxy.gamma.test:5269",
    },
  );
  const cells = await row("gamma.test").locator("td").allInnerTexts();
  assert.deepEqual(cells.slice(1, 7).map((c) => c.trim().replace(/\s+/g, " ")), ["Federated", "Required", "Required", "No", "g2.test g3.test", "Gamma research, EU"]);
  // focus goes back to the row's Edit button
  assert.equal(await page.evaluate(() => document.activeElement.dataset.fkey), "edit:gamma.test");

  // and back to the gateway default
  await row("gamma.test").getByRole("button", { name: "Edit gamma.test" }).click();
  assert.equal(await page.locator("#pf-connection_limit").inputValue(), "7");
  await page.locator("#pf-limit-default").check();
  await dialog().locator("button", { hasText: "Commit" }).click();
  await dialog().waitFor({ state: "detached" });
  assert.equal(gate.partner("gamma.test").connection_limit, null);
});

test("a 400 error is shown beside its field, and Cancel or Escape discard the edit", async () => {
  const edit = row("alpha.test").getByRole("button", { name: "Edit alpha.test" });
  await edit.click();
  await page.locator("#pf-connection_limit").fill("70000");
  await page.locator("#pf-proxy_fqdn").fill("not a host");
  await dialog().locator("button", { hasText: "Commit" }).click();
  const limitErr = page.locator("#pf-connection_limit-err, #pf-proxy_fqdn-err").filter({ hasNotText: /^$/ });
  await limitErr.first().waitFor();
  const shown = (await description(page.locator("#pf-connection_limit"))) + (await description(page.locator("#pf-proxy_fqdn")));
  assert.match(shown, /connection_limit must be an integer from 1 to 65535|proxy_fqdn/);
  assert.equal(gate.partner("alpha.test").connection_limit, null);

  await page.locator("#pf-description").fill("SHOULD NOT BE SAVED");
  await dialog().locator("button", { hasText: "Cancel" }).click();
  await dialog().waitFor({ state: "detached" });
  assert.equal(gate.partner("alpha.test").description, "Alpha Corp");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.fkey), "edit:alpha.test");

  await edit.click();
  assert.equal(await page.locator("#pf-description").inputValue(), "Alpha Corp", "the form starts from the stored partner again");
  assert.equal(await page.locator("#pf-connection_limit").inputValue(), "");
  await page.locator("#pf-description").fill("NOR THIS");
  await page.keyboard.press("Escape");
  await dialog().waitFor({ state: "detached" });
  assert.equal(gate.partner("alpha.test").description, "Alpha Corp");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.fkey), "edit:alpha.test", "Escape gives the focus back");
  assert.match(await row("alpha.test").innerText(), /Alpha Corp/);

  await page.locator("#partner-new").click();
  await page.locator("#pf-domain").fill("never.test");
  await page.keyboard.press("Escape");
  await dialog().waitFor({ state: "detached" });
  assert.equal(gate.partner("never.test"), null);
});

test("Delete asks first, naming the partner; Cancel keeps it, confirming removes it", async () => {
  const del = row("beta.test").getByRole("button", { name: "Delete beta.test" });
  await del.click();
  await dialog().waitFor();
  const text = await dialog().textContent();
  assert.match(text, /Delete the partner beta\.test\?/);
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Cancel", "the safe choice has the focus");
  await page.screenshot({ path: shotPath("partner-delete-confirm-1280") });
  await dialog().locator("button", { hasText: "Cancel" }).click();
  await dialog().waitFor({ state: "detached" });
  assert.ok(gate.partner("beta.test"));

  await del.click();
  await dialog().locator("button", { hasText: "Delete partner" }).click();
  await dialog().waitFor({ state: "detached" });
  await row("beta.test").waitFor({ state: "detached" });
  await page.locator(".notice-success", { hasText: "Deleted partner beta.test" }).waitFor();
  assert.equal(gate.partner("beta.test"), null);
});

test("keyboard only: Tab reaches New, the form is filled with keys, Enter commits", async () => {
  await page.locator("h1").focus();
  let steps = 0;
  while ((await page.evaluate(() => document.activeElement.id)) !== "partner-new") {
    await page.keyboard.press("Tab");
    assert.ok(++steps < 30, "Tab reaches the New button");
  }
  await page.keyboard.press("Enter");
  await dialog().waitFor();
  const order = [];
  const active = () => page.evaluate(() => document.activeElement.id || document.activeElement.textContent);
  order.push(await active());
  await page.keyboard.type("keys.test");
  await page.keyboard.press("Tab");
  order.push(await active());
  await page.keyboard.type("k2.test");
  await page.keyboard.press("Tab");
  order.push(await active());
  await page.keyboard.press("Space"); // subdomains on
  await page.keyboard.press("Tab");
  order.push(await active());
  await page.keyboard.type("Made with the keyboard");
  await page.keyboard.press("Tab");
  order.push(await active());
  await page.keyboard.type("f"); // Federated
  await page.keyboard.press("Tab");
  order.push(await active());
  await page.keyboard.type("o"); // TLS optional
  for (const _ of [1, 2, 3, 4, 5, 6]) {
    await page.keyboard.press("Tab");
    order.push(await active());
  }
  assert.deepEqual(order, [
    "pf-domain", "pf-additional_domains", "pf-subdomains", "pf-description", "pf-partner_type", "pf-tls",
    "pf-sasl", "pf-dialback", "pf-keepalive", "pf-limit-default", "pf-connection_limit", "pf-proxy_fqdn",
  ]);
  await page.keyboard.press("Enter"); // from the proxy field: submits the form
  await dialog().waitFor({ state: "detached" });
  await page.locator(".notice-success", { hasText: "Created partner keys.test" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "partner-new", "focus back on New");
  const p = gate.partner("keys.test");
  assert.equal(p.partner_type, "federated");
  assert.equal(p.tls, "optional");
  assert.equal(p.sasl, "optional");
  assert.equal(p.subdomains, true);
  assert.deepEqual(p.additional_domains, ["k2.test"]);
  assert.equal(p.description, "Made with the keyboard");
});

test("live: a partner added with fedgatectl appears and the status column follows GET /status, without a reload", async () => {
  assert.equal(gate.ctl("partner", "new", "live.test").code, 0);
  await row("live.test").waitFor({ timeout: 12000 });

  // The federation layer does not record links yet, so the streams come from a /status
  // answer given here, in the shape of SPEC section 7.
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  await page.route("**/api/v1/status", async (route) => {
    const real = await (await route.fetch()).json();
    for (const p of real.partners) {
      if (p.domain === "live.test") {
        p.streams = [
          { direction: "in", state: "established", local_domain: "home.test", remote_domain: "live.test", tls: "TLSv1.3", auth: "sasl-external", since: now },
          { direction: "out", state: "established", local_domain: "home.test", remote_domain: "live.test", tls: "TLSv1.3", auth: "dialback", since: now },
        ];
        p.last_error = { time: now, rule: null, message: "connection to live.test:5269 refused", fix: "check the partner's DNS records" };
        p.refused_stanzas = 3;
      }
    }
    await route.fulfill({ json: real });
  });
  const cell = row("live.test").locator(".status");
  await cell.filter({ hasText: "2 connected streams" }).waitFor({ timeout: 12000 });
  const text = await cell.innerText();
  assert.match(text, /In · SASL EXTERNAL · TLSv1\.3/);
  assert.match(text, /Out · dialback · TLSv1\.3/);
  assert.match(text, /connection to live\.test:5269 refused/);
  assert.match(text, /check the partner's DNS records/);
  assert.match(text, /3 refused stanzas/);
  await page.screenshot({ path: shotPath("partners-live-status-1280") });
  await page.unroute("**/api/v1/status");
  await cell.filter({ hasText: "No streams" }).waitFor({ timeout: 12000 });
});

test("a viewer sees no New, Edit or Delete, and double-click shows the details read-only", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  ctx.setDefaultTimeout(10000);
  const vp = await ctx.newPage();
  const vproblems = watch(vp, gate);
  await login(vp, gate, "vic");
  await vp.locator("tr.partner-row").first().waitFor();
  assert.equal(await vp.locator("#partner-new").count(), 0);
  assert.equal(await vp.locator("button", { hasText: /^(Edit|Delete|New partner)$/ }).count(), 0);
  assert.equal(await vp.locator("[data-action=edit], [data-action=delete]").count(), 0);
  await vp.screenshot({ path: shotPath("partners-viewer-1280") });
  await vp.locator('tr[data-domain="alpha.test"] td.col-desc').dblclick();
  const d = vp.locator("dialog[open]");
  await d.locator("h2", { hasText: "Partner alpha.test" }).waitFor();
  assert.equal(await d.locator("button", { hasText: "Commit" }).count(), 0);
  assert.ok(await vp.locator("#pf-tls").isDisabled());
  assert.equal(await vp.locator("#pf-description").getAttribute("readonly"), "");
  await vp.keyboard.press("Escape");
  await d.waitFor({ state: "detached" });
  assert.deepEqual(vproblems, []);
  await ctx.close();
});

test("the audit page lists the partner changes made in the panel, with before and after", async () => {
  await page.locator("#nav a", { hasText: "Audit log" }).click();
  await page.locator("h1", { hasText: "Audit log" }).waitFor();
  await page.locator("#audit-action").fill("partner.*");
  await page.locator("#audit-actor").fill("admin:boss");
  await page.locator("#audit-action").press("Enter");
  await page.waitForFunction(() => {
    const trs = [...document.querySelectorAll("tbody tr[data-action]")];
    return trs.length > 0 && trs.every((t) => t.dataset.actor === "admin:boss" && t.dataset.action.startsWith("partner."));
  });
  const rows = await page.locator("tbody tr").evaluateAll((trs) => trs.map((t) => `${t.dataset.action} ${t.dataset.object}`));
  for (const want of ["partner.create partner:warn.test", "partner.update partner:gamma.test", "partner.delete partner:beta.test", "partner.create partner:keys.test"]) {
    assert.ok(rows.includes(want), `${want} in ${rows}`);
  }
  assert.ok(!rows.some((r) => r.includes("refused.test") || r.includes("never.test")), "refused and cancelled changes wrote nothing");
  assert.ok(!rows.some((r) => r.includes("live.test")), "the actor filter leaves out fedgatectl's records");
  const upd = page.locator('tr[data-action="partner.update"][data-object="partner:gamma.test"]').last();
  const change = await upd.locator(".changes").innerText();
  assert.match(change, /description: Gamma research → Gamma research, EU/);
  assert.match(change, /partner_type: public-verified → federated/);
  await upd.locator("summary").click();
  const ba = await upd.locator(".ba-grid").innerText();
  assert.match(ba, /before[\s\S]*"description": "Gamma research"[\s\S]*after[\s\S]*"description": "Gamma research, EU"/i);
  const actorCell = await upd.locator("td").nth(1).innerText();
  assert.equal(actorCell.trim(), "admin:boss");
  await page.screenshot({ path: shotPath("audit-partners-1280"), fullPage: false });
  assert.deepEqual(problems, []);
});
