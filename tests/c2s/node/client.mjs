// A second client family for fedgate's c2s tests: @xmpp/client (xmpp.js), driven by
// tests/c2s/test_node.py. It logs in (SCRAM-SHA-1, the library's first choice, over
// STARTTLS for xmpp:// or direct TLS for xmpps://), sends presence and a chat message
// to PEER, waits for PEER's answer, and reports each step as one JSON line on stdout:
//   {"event":"online","jid":J,"secure":true,"mechanism":M}
//   {"event":"received","from":F,"body":B}
//   {"event":"error","message":..,"condition":..}
// Exit status: 0 done, 1 error (login refused, ...), 3 timed out.
// usage: node client.mjs SERVICE DOMAIN USER PASSWORD PEER_FULL_JID [TIMEOUT_MS]
// The test CA is trusted through NODE_EXTRA_CA_CERTS.
import tls from "node:tls";

import { client, xml } from "@xmpp/client";

const [service, domain, username, password, peer, timeoutArg] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg || 20000);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// xmpp.js connects direct TLS to the service's host name; the tests connect to a
// loopback address, so the certificate is checked against DOMAIN instead (as any
// client that finds the host through SRV records does).
const origConnect = tls.connect;
tls.connect = (opts, ...rest) => {
  if (opts && typeof opts === "object" && !opts.socket) {
    opts = { ...opts, servername: domain, checkServerIdentity: (_h, cert) =>
      tls.checkServerIdentity(domain, cert) };
  }
  return origConnect.call(tls, opts, ...rest);
};

const xmpp = client({ service, domain, username, password, resource: "xmppjs", timeout: 10000 });
xmpp.reconnect.stop();

let mechanism = null;
xmpp.on("nonza", (el) => {
  // remember the mechanism we chose (the <auth/> we sent is not an event; the
  // offered list is, and xmpp.js takes its first supported one)
  if (el.is("features") && el.getChild("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")) {
    const offered = el.getChild("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
      .getChildren("mechanism").map((m) => m.text());
    mechanism = ["SCRAM-SHA-1", "PLAIN"].find((m) => offered.includes(m)) || null;
  }
});

const timer = setTimeout(() => {
  say({ event: "error", message: `timed out after ${timeoutMs} ms` });
  process.exit(3);
}, timeoutMs);

xmpp.on("error", (err) => {
  say({ event: "error", message: String(err && err.message || err),
        condition: err && err.condition || null });
  clearTimeout(timer);
  process.exit(1);
});

xmpp.on("stanza", async (stanza) => {
  if (stanza.is("message") && stanza.getChildText("body") !== null) {
    say({ event: "received", from: stanza.attrs.from, type: stanza.attrs.type || null,
          body: stanza.getChildText("body") });
    clearTimeout(timer);
    try {
      await xmpp.send(xml("presence", { type: "unavailable" }));
      await xmpp.stop();
    } catch (e) {
      // already closing
    }
    process.exit(0);
  }
});

xmpp.on("online", async (address) => {
  say({ event: "online", jid: address.toString(), secure: xmpp.isSecure(), mechanism });
  await xmpp.send(xml("presence", {}, xml("status", {}, "xmpp.js here")));
  await xmpp.send(xml("message", { to: peer, type: "chat", id: "node-1" },
    xml("body", {}, "hello from xmpp.js")));
});

try {
  await xmpp.start();
} catch (err) {
  say({ event: "error", message: String(err && err.message || err),
        condition: err && err.condition || null });
  clearTimeout(timer);
  process.exit(1);
}
