#!/usr/bin/env python3
"""mkusers - write N benchmark accounts straight into a server's store, fast.

  mkusers.py fedgate DB_FILE DOMAIN N [PREFIX] [PASSWORD]
  mkusers.py prosody DATA_DIR DOMAIN N [PREFIX] [PASSWORD]

Every account gets the same password, salt and 4096 iterations, so the SCRAM keys are
derived once (fedgatectl would derive them per user: 2 x PBKDF2 each). fedgate: the
`users` table as fedgatectl writes it (base64 salt and keys, SHA-256 and SHA-1), after
the store was created and migrated by fedgatectl; the revision is bumped. Prosody 0.12
(internal_hashed): data/DOMAIN-encoded/accounts/USER.dat with hex SCRAM-SHA-1 keys and
the salt as a plain string, as `prosodyctl register` writes them."""
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
    else:
        sys.exit("usage: mkusers.py fedgate|prosody WHERE DOMAIN N [PREFIX] [PASSWORD]")


main()
