"""Partners through the API (SPEC sections 1, 2 and 7): the 18 matrix rows through POST and
PATCH with nothing saved after a 422, PUT and merge-patch semantics, domain rules D1-D3,
both IDN forms in paths, 400/404/409/413/415, status, and one store shared with
fedgatectl."""
import json
import urllib.parse

import pytest

from conftest import MSG, PARTNER_DEFAULTS, make_gate

IP = "127.0.0.43"

NEG = ("required", "optional", "not-supported")
# SPEC section 2, row by row: (tls, sasl, dialback) -> (refusal, warnings)
MATRIX = {
    1: ("required", "required", True, None, ["W2"]),
    2: ("required", "required", False, None, []),
    3: ("optional", "required", True, None, ["W1", "W2"]),
    4: ("optional", "required", False, None, ["W1"]),
    5: ("not-supported", "required", True, "R3", []),
    6: ("not-supported", "required", False, "R3", []),
    7: ("required", "optional", True, None, []),
    8: ("required", "optional", False, None, []),
    9: ("optional", "optional", True, None, []),
    10: ("optional", "optional", False, None, ["W1"]),
    11: ("not-supported", "optional", True, "R3", []),
    12: ("not-supported", "optional", False, "R3", []),
    13: ("required", "not-supported", True, None, []),
    14: ("required", "not-supported", False, "R2", []),
    15: ("optional", "not-supported", True, None, []),
    16: ("optional", "not-supported", False, "R2", []),
    17: ("not-supported", "not-supported", True, None, []),
    18: ("not-supported", "not-supported", False, "R2", []),
}


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    g = make_gate(tmp_path_factory, IP)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def boss(gate):
    return gate.client("boss")


def store_state(gate, boss):
    """Partners and audit as both faces see them."""
    api = boss.get("/partners")
    assert api.status == 200
    return api.json, gate.ctl_json("partner", "list"), gate.ctl_json("audit")


def check_warnings(doc, expected):
    assert sorted(w["rule"] for w in doc["warnings"]) == expected
    for w in doc["warnings"]:
        assert w["message"] == MSG[w["rule"]]


@pytest.mark.parametrize("row", sorted(MATRIX))
def test_matrix_post(gate, boss, row):
    tls, sasl, db, refusal, warnings = MATRIX[row]
    d = f"post{row}.test"
    before = store_state(gate, boss)
    r = boss.post("/partners", {"domain": d, "tls": tls, "sasl": sasl, "dialback": db})
    if refusal:
        assert r.status == 422, r
        e = r.error("refused", refusal)
        assert e["message"] == MSG[refusal]
        assert e["fields"], e
        assert store_state(gate, boss) == before
        assert boss.get(f"/partners/{d}").status == 404
    else:
        assert r.status == 201, r
        p = r.json["partner"]
        assert (p["tls"], p["sasl"], p["dialback"]) == (tls, sasl, db)
        check_warnings(r.json, warnings)
        assert r.header("Location") == f"/api/v1/partners/{d}"
        assert gate.ctl_json("partner", "show", d)[1]["partner"] == p


@pytest.mark.parametrize("row", sorted(MATRIX))
@pytest.mark.parametrize("ctype", ["application/json", "application/merge-patch+json"])
def test_matrix_patch(gate, boss, row, ctype):
    tls, sasl, db, refusal, warnings = MATRIX[row]
    d = f"patch{row}-{ctype.split('/')[1].replace('+', '')}.test"
    assert boss.post("/partners", {"domain": d, "description": "keep me"}).status == 201
    before = store_state(gate, boss)
    r = boss.patch(f"/partners/{d}", {"tls": tls, "sasl": sasl, "dialback": db}, ctype=ctype)
    if refusal:
        assert r.status == 422, r
        assert r.error("refused", refusal)["message"] == MSG[refusal]
        assert store_state(gate, boss) == before
    else:
        assert r.status == 200, r
        p = r.json["partner"]
        assert (p["tls"], p["sasl"], p["dialback"]) == (tls, sasl, db)
        assert p["description"] == "keep me"  # a merge patch keeps what it does not name
        check_warnings(r.json, warnings)


def test_patch_is_judged_on_the_merged_partner(gate, boss):
    assert boss.post("/partners", {"domain": "merge.test", "sasl": "not-supported"}).status == 201
    before = store_state(gate, boss)
    r = boss.patch("/partners/merge.test", {"dialback": False})  # -> row 14
    assert r.status == 422
    r.error("refused", "R2")
    assert store_state(gate, boss) == before
    r = boss.patch("/partners/merge.test", {"tls": "not-supported"})  # -> row 17
    assert r.status == 200 and r.json["partner"]["sasl"] == "not-supported"


def test_put_replaces_and_omitted_keys_take_defaults(gate, boss):
    body = {"domain": "put.test", "description": "x", "partner_type": "federated",
            "additional_domains": ["put-alt.test"], "connection_limit": 7, "keepalive": False}
    assert boss.post("/partners", body).status == 201
    r = boss.put("/partners/put.test", {"description": "only this"})
    assert r.status == 200, r
    p = r.json["partner"]
    assert p["description"] == "only this"
    for k, v in PARTNER_DEFAULTS.items():
        if k != "description":
            assert p[k] == v, k
    assert r.json["warnings"] == []
    r = boss.put("/partners/put.test", {"domain": "put.test", "tls": "not-supported"})
    assert r.status == 422
    r.error("refused", "R3")


def test_domain_cannot_change(gate, boss):
    assert boss.post("/partners", {"domain": "fixed.test"}).status == 201
    for method in ("PUT", "PATCH"):
        r = boss.req(method, "/partners/fixed.test", {"domain": "other.test"})
        assert r.status == 400, (method, r)
        assert "domain" in r.error("invalid_value")["fields"]
    assert boss.get("/partners/other.test").status == 404
    assert boss.patch("/partners/fixed.test", {"domain": "FIXED.test."}).status == 200


def test_merge_patch_null_resets_to_default(gate, boss):
    assert boss.post("/partners", {"domain": "nulls.test", "description": "d",
                                   "connection_limit": 5}).status == 201
    r = boss.patch("/partners/nulls.test", {"description": None, "connection_limit": None},
                   ctype="application/merge-patch+json")
    assert r.status == 200
    assert r.json["partner"]["description"] == ""
    assert r.json["partner"]["connection_limit"] is None


def test_idn_forms_and_percent_encoding(gate, boss):
    r = boss.post("/partners", {"domain": "Bücher.Example"})
    assert r.status == 201, r
    p = r.json["partner"]
    assert p["domain"] == "xn--bcher-kva.example" and p["domain_unicode"] == "bücher.example"
    for path in ("xn--bcher-kva.example", urllib.parse.quote("bücher.example"),
                 urllib.parse.quote("BÜCHER.example"), "XN--BCHER-KVA.EXAMPLE"):
        r = boss.get(f"/partners/{path}")
        assert r.status == 200, path
        assert r.json["partner"]["domain"] == "xn--bcher-kva.example"
    assert boss.patch("/partners/" + urllib.parse.quote("bücher.example"),
                      {"description": "idn"}).status == 200
    assert boss.get("/partners/%zz").status == 400


def test_additional_domain_is_not_found(gate, boss):
    assert boss.post("/partners", {"domain": "main.test",
                                   "additional_domains": ["extra.test"]}).status == 201
    for method, body in (("GET", None), ("PUT", {}), ("PATCH", {"description": "x"}),
                         ("DELETE", None)):
        r = boss.req(method, "/partners/extra.test", body)
        assert r.status == 404, (method, r)
        r.error("not_found")
    assert boss.get("/partners/extra.test/status").status == 404


def test_domain_rules(gate, boss):
    assert boss.post("/partners", {"domain": "owner.test",
                                   "additional_domains": ["shared.test"]}).status == 201
    before = store_state(gate, boss)
    cases = [
        ({"domain": "shared.test"}, "D1"),
        ({"domain": "new1.test", "additional_domains": ["owner.test"]}, "D1"),
        ({"domain": "home.test"}, "D2"),
        ({"domain": "new2.test", "additional_domains": ["xn--bro-hoa.test"]}, "D2"),
        ({"domain": "new3.test", "additional_domains": ["new3.test"]}, "D3"),
        # several rules: R3 comes first
        ({"domain": "home.test", "tls": "not-supported", "sasl": "required"}, "R3"),
    ]
    for body, rule in cases:
        r = boss.post("/partners", body)
        assert r.status == 422, (body, r)
        r.error("refused", rule)
        assert store_state(gate, boss) == before
    r = boss.patch("/partners/owner.test", {"additional_domains": ["owner.test"]})
    assert r.status == 422
    r.error("refused", "D3")
    assert store_state(gate, boss) == before


def test_exists_409_and_bad_values_400(gate, boss):
    assert boss.post("/partners", {"domain": "dup.test"}).status == 201
    r = boss.post("/partners", {"domain": "DUP.test"})
    assert r.status == 409
    r.error("exists")
    for body, field in (({"domain": "bad..test"}, "domain"), ({"domain": "127.0.0.1"}, "domain"),
                        ({"domain": "-x.test"}, "domain"), ({}, "domain"),
                        ({"domain": 5}, "domain"),
                        ({"domain": "v.test", "tls": "maybe"}, "tls"),
                        ({"domain": "v.test", "dialback": "yes"}, "dialback"),
                        ({"domain": "v.test", "connection_limit": 0}, None),
                        ({"domain": "v.test", "connection_limit": 65536}, None),
                        ({"domain": "v.test", "description": "x" * 1025}, None),
                        ({"domain": "v.test", "partner_type": "friend"}, "partner_type")):
        r = boss.post("/partners", body)
        assert r.status == 400, (body, r)
        e = r.json["error"]
        assert e["code"] in ("invalid_value", "usage"), e
        if field:
            assert field in e["fields"], (body, e)
    assert boss.get("/partners/v.test").status == 404
    assert boss.get("/partners/bad..test").status == 400


def test_malformed_json_and_media_types(gate, boss):
    r = boss.post("/partners", raw=b'{"domain": "m.test",')
    assert r.status == 400
    r.error("usage")
    r = boss.post("/partners", raw=b'["m.test"]')
    assert r.status == 400
    r = boss.post("/partners", raw=b'{"domain": "m.test", "domain": "n.test"}')
    assert r.status == 400
    r = boss.post("/partners", raw=b'\xff\xfe')
    assert r.status == 400
    r = boss.post("/partners", raw=b'{"domain": "m.test"}', ctype="text/plain")
    assert r.status == 415
    r.error("unsupported_media_type")
    r = boss.post("/partners", raw=b'{"domain": "m.test"}', ctype=None)
    assert r.status == 415
    # merge-patch+json is for PATCH only
    r = boss.post("/partners", raw=b'{"domain": "m.test"}', ctype="application/merge-patch+json")
    assert r.status == 415
    r = boss.patch("/partners/dup.test", raw=b'{}', ctype="application/x-www-form-urlencoded")
    assert r.status == 415
    r = boss.post("/partners", raw=b'{"domain": "m.test"}', ctype="Application/JSON; charset=utf-8")
    assert r.status == 201


def test_body_too_large(gate, boss):
    big = json.dumps({"domain": "big.test", "description": "x" * 70000}).encode()
    r = boss.post("/partners", raw=big)
    assert r.status == 413
    r.error("too_large")
    # without a Content-Length (chunked): refused too, and nothing buffered past the limit
    c = boss.conn()
    c.putrequest("POST", "/api/v1/partners")
    c.putheader("Content-Type", "application/json")
    c.putheader("Cookie", f"fedgate_session={boss.cookie}")
    c.putheader("X-CSRF-Token", boss.csrf)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for i in range(0, len(big), 8192):
        part = big[i:i + 8192]
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    resp = c.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"]["code"] == "too_large"
    c.close()
    assert boss.get("/partners/big.test").status == 404
    # just under the limit is fine
    ok = json.dumps({"domain": "big.test", "x": "y" * 100}).encode()
    assert boss.post("/partners", raw=ok).status == 400  # unknown key, but parsed


def test_delete(gate, boss):
    assert boss.post("/partners", {"domain": "gone.test"}).status == 201
    r = boss.delete("/partners/gone.test")
    assert r.status == 204 and r.raw == b""
    assert boss.get("/partners/gone.test").status == 404
    r = boss.delete("/partners/gone.test")
    assert r.status == 404
    r.error("not_found")


def test_list_and_filter(gate, boss):
    r = boss.get("/partners")
    assert r.status == 200 and set(r.json) == {"partners"}
    doms = [p["domain"] for p in r.json["partners"]]
    assert doms == sorted(doms)
    r = boss.get("/partners?filter=" + urllib.parse.quote("post1*.test"))
    assert sorted(p["domain"] for p in r.json["partners"]) == ["post1.test", "post10.test",
                                                                "post13.test", "post15.test",
                                                                "post17.test"]


def test_status_shapes(gate, boss):
    r = boss.get("/status")
    assert r.status == 200
    doc = r.json
    assert set(doc) == {"daemon", "partners"}
    assert doc["daemon"]["running"] is True
    assert doc["daemon"]["heartbeat"].endswith("Z")
    listed = {p["domain"] for p in boss.get("/partners").json["partners"]}
    assert {p["domain"] for p in doc["partners"]} == listed
    for p in doc["partners"]:
        assert p == {"domain": p["domain"], "streams": [], "last_error": None,
                     "refused_stanzas": 0}
    r = boss.get("/partners/" + urllib.parse.quote("bücher.example") + "/status")
    assert r.status == 200
    assert [p["domain"] for p in r.json["partners"]] == ["xn--bcher-kva.example"]
    assert boss.get("/partners/nobody.test/status").status == 404


def test_cli_and_api_share_the_store(gate, boss):
    r = boss.post("/partners", {"domain": "fromapi.test", "partner_type": "federated"})
    assert r.status == 201
    rc, doc = gate.ctl_json("partner", "show", "fromapi.test")
    assert rc == 0 and doc["partner"] == r.json["partner"]
    p = gate.ctl("partner", "new", "fromcli.test", "--tls", "optional")
    assert p.returncode == 0, p.stderr
    r = boss.get("/partners/fromcli.test")
    assert r.status == 200 and r.json["partner"]["tls"] == "optional"
    assert gate.ctl("partner", "set", "fromapi.test", "--description", "cli").returncode == 0
    assert boss.get("/partners/fromapi.test").json["partner"]["description"] == "cli"
    assert boss.delete("/partners/fromcli.test").status == 204
    assert gate.ctl("partner", "show", "fromcli.test").returncode == 4


def test_audit_records_of_api_changes(gate, boss):
    assert boss.post("/partners", {"domain": "aud.test"}).status == 201
    assert boss.patch("/partners/aud.test", {"description": "v2"}).status == 200
    assert boss.patch("/partners/aud.test", {"description": "v2"}).status == 200  # no change
    assert boss.delete("/partners/aud.test").status == 204
    rc, doc = gate.ctl_json("audit")
    recs = [a for a in doc["audit"] if a["object"] == "partner:aud.test"]
    assert [a["action"] for a in recs] == ["partner.delete", "partner.update", "partner.create"]
    for a in recs:
        assert a["actor"] == "admin:boss"
        assert a["address"] == "127.0.0.1"
    dele, upd, cre = recs
    assert cre["before"] is None and cre["after"]["domain"] == "aud.test"
    assert upd["before"]["description"] == "" and upd["after"]["description"] == "v2"
    assert dele["before"]["description"] == "v2" and dele["after"] is None
    r = boss.get("/audit?object=partner:aud.test")
    assert [a["action"] for a in r.json["audit"]] == [a["action"] for a in recs]


def test_concurrent_api_and_cli_writes_lose_nothing(gate, boss):
    """API threads and fedgatectl write at once; every change lands with its audit record."""
    import threading
    errors = []

    def api_writer(t):
        c = gate.client("adm")
        for i in range(8):
            r = c.post("/partners", {"domain": f"race-api{t}-{i}.test"})
            if r.status != 201:
                errors.append(r)
            r = c.patch(f"/partners/race-api{t}-{i}.test", {"description": f"t{t}"})
            if r.status != 200:
                errors.append(r)

    def cli_writer():
        for i in range(8):
            p = gate.ctl("partner", "new", f"race-cli-{i}.test", "--description", "cli")
            if p.returncode != 0:
                errors.append(p.stderr)

    threads = [threading.Thread(target=api_writer, args=(t,)) for t in range(3)]
    threads.append(threading.Thread(target=cli_writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    got = {p["domain"]: p["description"] for p in boss.get("/partners?filter=race-*").json["partners"]}
    want = {f"race-api{t}-{i}.test": f"t{t}" for t in range(3) for i in range(8)}
    want.update({f"race-cli-{i}.test": "cli" for i in range(8)})
    assert got == want
    recs = boss.get("/audit?object=partner:race-*").json["audit"]
    assert sorted(a["action"] for a in recs) == ["partner.create"] * 32 + ["partner.update"] * 24
