#!/usr/bin/env python3
"""mkusers - write N benchmark accounts straight into a server's store, fast.

  mkusers.py fedgate DB_FILE DOMAIN N [PREFIX] [PASSWORD]
  mkusers.py prosody DATA_DIR DOMAIN N [PREFIX] [PASSWORD]
  mkusers.py ejabberd DB_FILE DOMAIN N [PREFIX] [PASSWORD] [sha1|sha256]

Every account gets the same password, salt and 4096 iterations, so the SCRAM keys are
derived once (fedgatectl would derive them per user: 2 x PBKDF2 each). fedgate: the
`users` table as fedgatectl writes it (base64 salt and keys, SHA-256 and SHA-1), after
the store was created and migrated by fedgatectl; the revision is bumped. Prosody 0.12
(internal_hashed): data/DOMAIN-encoded/accounts/USER.dat with hex SCRAM-SHA-1 keys and
the salt as a plain string, as `prosodyctl register` writes them. ejabberd 23.01
(auth_method: sql, sql_type: sqlite, auth_password_format: scram): a new SQLite file with
the schema ejabberd ships (/usr/share/ejabberd/sql/lite.sql) and one `users` row per account
with base64 stored key, server key and salt, as ejabberd_auth_sql writes them; stored keys
of SHA-256 accounts carry the "sha256:" prefix (then auth_scram_hash: sha256). Writing
10,000 rows takes well under a second; `ejabberdctl register` starts an Erlang node per
account (about a second each)."""
import base64, hashlib, hmac, os, sqlite3, sys

ITER = 4096


def keys(hname, pw, salt):
    salted = hashlib.pbkdf2_hmac(hname, pw.encode(), salt, ITER)
    ck = hmac.new(salted, b"Client Key", hname).digest()
    sk = hmac.new(salted, b"Server Key", hname).digest()
    return hashlib.new(hname, ck).digest(), sk


def main():
    kind, where, domain, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    prefix = sys.argv[5] if len(sys.argv) > 5 else "u"
    pw = sys.argv[6] if len(sys.argv) > 6 else "bench-pw"
    if kind == "fedgate":
        salt = b"fedgate-bench-16"
        st256, sk256 = keys("sha256", pw, salt)
        st1, sk1 = keys("sha1", pw, salt)
        b = lambda x: base64.b64encode(x).decode()
        rows = [(f"{prefix}{i}@{domain}", b(salt), ITER, b(st256), b(sk256), b(salt), ITER,
                 b(st1), b(sk1)) for i in range(1, n + 1)]
        db = sqlite3.connect(where)
        db.executemany("INSERT OR REPLACE INTO users (jid, sha256_salt, sha256_iterations, "
                       "sha256_stored_key, sha256_server_key, sha1_salt, sha1_iterations, "
                       "sha1_stored_key, sha1_server_key) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
        db.commit()
        db.close()
    elif kind == "prosody":
        salt = "prosody-bench-salt-0001"
        st1, sk1 = keys("sha1", pw, salt.encode())
        d = os.path.join(where, domain.replace(".", "%2e").replace("-", "%2d"), "accounts")
        os.makedirs(d, exist_ok=True)
        body = (f'return {{\n\t["server_key"] = "{sk1.hex()}";\n\t["iteration_count"] = {ITER};\n'
                f'\t["salt"] = "{salt}";\n\t["stored_key"] = "{st1.hex()}";\n}};\n')
        for i in range(1, n + 1):
            with open(os.path.join(d, f"{prefix}{i}.dat"), "w") as f:
                f.write(body)
    elif kind == "ejabberd":
        hname = sys.argv[7] if len(sys.argv) > 7 else "sha1"
        if hname not in ("sha1", "sha256"):
            sys.exit("mkusers.py ejabberd: hash must be sha1 or sha256")
        salt = b"ejabberd-bench16"
        st, sk = keys(hname, pw, salt)
        b = lambda x: base64.b64encode(x).decode()
        stored = b(st) if hname == "sha1" else "sha256:" + b(st)
        schema = os.environ.get("EJABBERD_SQL_SCHEMA", "/usr/share/ejabberd/sql/lite.sql")
        if os.path.exists(where):
            os.unlink(where)
        db = sqlite3.connect(where)
        db.executescript(open(schema).read())
        db.executemany("INSERT INTO users (username, password, serverkey, salt, iterationcount) "
                       "VALUES (?,?,?,?,?)",
                       [(f"{prefix}{i}", stored, b(sk), b(salt), ITER) for i in range(1, n + 1)])
        db.commit()
        db.close()
    else:
        sys.exit("usage: mkusers.py fedgate|prosody|ejabberd WHERE DOMAIN N [PREFIX] [PASSWORD]")


main()
