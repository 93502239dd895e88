/* store.c - the store interface (store.h): URL parsing, numbered schema migrations and
 * every query, written once in generic SQL with "?" placeholders and text values.
 * It never talks to a database itself (driver.h does) and applies no policy rule. */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "store/driver.h"

struct fg_store {
    const struct fg_store_driver *drv;
    void *conn;
    char *display; /* the URL as shown to people: resolved path, no password */
    char *target;  /* what the driver opened (file path or libpq URL), for another handle */
    bool in_tx;    /* between fg_store_begin and fg_store_commit/rollback */
    bool dirty;    /* something that bumps the revision was written in this transaction */
    char err[1024];
};

/* ---- schema migrations ------------------------------------------------------------ */

/* Each migration is a list of statements run in one write transaction together with its
 * schema_version row. Append new ones at the end; never edit one that was released.
 * "@PK@" becomes the driver's auto-increment primary key. Tables are created without
 * IF NOT EXISTS on purpose: a migration that ran twice must fail, not pass silently. */
static const char *const migration_1[] = {
    "CREATE TABLE partners ("
    " domain TEXT PRIMARY KEY,"
    " description TEXT NOT NULL DEFAULT '',"
    " subdomains INTEGER NOT NULL DEFAULT 0,"
    " partner_type TEXT NOT NULL,"
    " tls TEXT NOT NULL,"
    " sasl TEXT NOT NULL,"
    " dialback INTEGER NOT NULL,"
    " keepalive INTEGER NOT NULL,"
    " connection_limit INTEGER," /* NULL: the gateway's partner_connection_limit */
    " proxy_fqdn TEXT NOT NULL DEFAULT '')",
    /* Additional domains: the primary key makes a domain belong to one partner only. */
    "CREATE TABLE partner_domains ("
    " domain TEXT PRIMARY KEY,"
    " partner TEXT NOT NULL REFERENCES partners(domain) ON DELETE CASCADE,"
    " position INTEGER NOT NULL)",
    "CREATE INDEX partner_domains_partner ON partner_domains (partner, position)",
    "CREATE TABLE gateway (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE users ("
    " jid TEXT PRIMARY KEY,"
    " sha256_salt TEXT NOT NULL DEFAULT '',"
    " sha256_iterations INTEGER NOT NULL DEFAULT 0,"
    " sha256_stored_key TEXT NOT NULL DEFAULT '',"
    " sha256_server_key TEXT NOT NULL DEFAULT '',"
    " sha1_salt TEXT NOT NULL DEFAULT '',"
    " sha1_iterations INTEGER NOT NULL DEFAULT 0,"
    " sha1_stored_key TEXT NOT NULL DEFAULT '',"
    " sha1_server_key TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE admins (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE tokens ("
    " id TEXT PRIMARY KEY,"
    " admin TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,"
    " role TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE,"
    " created BIGINT NOT NULL,"
    " expires BIGINT)", /* NULL: never */
    "CREATE TABLE audit ("
    " id @PK@,"
    " time BIGINT NOT NULL,"
    " actor TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " object TEXT NOT NULL,"
    " before_json TEXT,"
    " after_json TEXT)",
    "CREATE INDEX audit_time ON audit (time)",
    "CREATE TABLE revision (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO revision (id, value) VALUES (1, 0)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    NULL,
};

/* Rosters and offline messages (the IM layer, src/im). A roster row is one (owner,
 * contact) pair: the subscription state of RFC 6121 Appendix A as subscription + ask
 * (pending out) + pending_in, the pre-approval flag of section 3.4, and listed = 0 for
 * rows that only remember a subscription state (an inbound request from someone not in
 * the roster). Groups are a JSON array of strings. roster_version holds the roster
 * version (RFC 6121 section 2.6) per owner. offline keeps each stored message as the
 * serialized stanza, delivered verbatim; id gives the order. */
static const char *const migration_2[] = {
    "CREATE TABLE roster ("
    " owner TEXT NOT NULL,"
    " contact TEXT NOT NULL,"
    " name TEXT,"                  /* NULL: no name */
    " subscription TEXT NOT NULL," /* none, to, from, both */
    " ask INTEGER NOT NULL DEFAULT 0,"
    " pending_in INTEGER NOT NULL DEFAULT 0,"
    " approved INTEGER NOT NULL DEFAULT 0,"
    " listed INTEGER NOT NULL DEFAULT 1,"
    " groups_json TEXT NOT NULL DEFAULT '[]',"
    " PRIMARY KEY (owner, contact))",
    "CREATE TABLE roster_version (owner TEXT PRIMARY KEY, version BIGINT NOT NULL)",
    "CREATE TABLE offline ("
    " id @PK@,"
    " recipient TEXT NOT NULL,"
    " stamp BIGINT NOT NULL,"
    " stanza TEXT NOT NULL)",
    "CREATE INDEX offline_recipient ON offline (recipient, id)",
    NULL,
};

static const struct {
    int version;
    const char *const *sql;
} migrations[] = {
    {1, migration_1},
    {2, migration_2},
};
#define NMIGRATIONS (sizeof migrations / sizeof migrations[0])

/* ---- small helpers ---------------------------------------------------------------- */

static void set_err(struct fg_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(struct fg_store *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

static int run(struct fg_store *st, const char *sql, int n, const char *const *params, fg_row_cb cb,
               void *ctx, long *changes)
{
    char derr[512];
    int rc = st->drv->exec(st->conn, sql, n, params, cb, ctx, changes, derr, sizeof derr);
    if (rc != 0)
        set_err(st, "%s", derr);
    return rc;
}

/* All rows of a result, copied: n rows of ncols cells, NULL for SQL NULL. Collecting
 * first and converting afterwards keeps error handling out of the row callbacks. */
struct rows {
    size_t n, ncols, cap;
    char **cells;
};

static int collect_row(void *ctx, int ncols, const char *const *cols)
{
    struct rows *r = ctx;
    if (r->n == 0)
        r->ncols = (size_t)ncols;
    if ((r->n + 1) * r->ncols > r->cap) {
        r->cap = r->cap ? r->cap * 2 : r->ncols * 8;
        while (r->cap < (r->n + 1) * r->ncols)
            r->cap *= 2;
        r->cells = fg_realloc(r->cells, r->cap * sizeof *r->cells);
    }
    for (size_t i = 0; i < r->ncols; i++)
        r->cells[r->n * r->ncols + i] = cols[i] ? fg_strdup(cols[i]) : NULL;
    r->n++;
    return 0;
}

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n * r->ncols; i++)
        fg_free(r->cells[i]);
    fg_free(r->cells);
    memset(r, 0, sizeof *r);
}

static const char *cell(const struct rows *r, size_t row, size_t col)
{
    return r->cells[row * r->ncols + col];
}

static int select_rows(struct fg_store *st, const char *sql, int n, const char *const *params,
                       struct rows *r)
{
    memset(r, 0, sizeof *r);
    int rc = run(st, sql, n, params, collect_row, r, NULL);
    if (rc != 0)
        rows_free(r);
    return rc;
}

/* Values read back are checked: a store edited by hand must not crash the reader. */
static int parse_i64(struct fg_store *st, const char *s, const char *what, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno) {
        set_err(st, "the store holds an invalid %s: '%s'", what, s ? s : "NULL");
        return FG_EIO;
    }
    *out = v;
    return 0;
}

static int parse_int(struct fg_store *st, const char *s, const char *what, int *out)
{
    int64_t v;
    int rc = parse_i64(st, s, what, &v);
    if (rc == 0 && (v < INT32_MIN || v > INT32_MAX)) {
        set_err(st, "the store holds an out-of-range %s: '%s'", what, s);
        rc = FG_EIO;
    }
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static int parse_enum(struct fg_store *st, int (*parse)(const char *), const char *s,
                      const char *what, int *out)
{
    int v = s ? parse(s) : -1;
    if (v < 0) {
        set_err(st, "the store holds an invalid %s: '%s'", what, s ? s : "NULL");
        return FG_EIO;
    }
    *out = v;
    return 0;
}

static int copy_field(struct fg_store *st, char *dst, size_t len, const char *src, const char *what)
{
    if ((size_t)snprintf(dst, len, "%s", src ? src : "") >= len) {
        set_err(st, "the store holds a %s longer than %zu bytes", what, len - 1);
        return FG_EIO;
    }
    return 0;
}

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a, b);
}

/* Results are sorted in C, not with ORDER BY: the two databases collate text
 * differently (a PostgreSQL locale ignores dots and hyphens), the byte order does not. */
static int cmp_strp(const void *a, const void *b)
{
    return cmp_str(*(char *const *)a, *(char *const *)b);
}

static void fmt_i64(char *buf, size_t len, int64_t v)
{
    snprintf(buf, len, "%" PRId64, v);
}

/* ---- write framing ----------------------------------------------------------------- */

/* Every write function runs its statements inside a savepoint, so that a failing write
 * (a duplicate, say) undoes its own partial work and leaves the caller's transaction
 * usable on both drivers (PostgreSQL would otherwise refuse every later statement). */
static int write_begin(struct fg_store *st)
{
    if (!st->in_tx) {
        set_err(st, "internal error: store write outside fg_store_begin/fg_store_commit");
        return FG_EIO;
    }
    return run(st, "SAVEPOINT fg_write", 0, NULL, NULL, NULL, NULL);
}

/* Closes the savepoint of write_begin: keeps the work when rc is 0, undoes it otherwise.
 * bump: whether the write counts for the configuration revision. */
static int write_end(struct fg_store *st, int rc, bool bump)
{
    char ignored[256];
    if (rc == 0) {
        rc = run(st, "RELEASE SAVEPOINT fg_write", 0, NULL, NULL, NULL, NULL);
        if (rc == 0) {
            if (bump)
                st->dirty = true;
            return 0;
        }
    }
    st->drv->exec(st->conn, "ROLLBACK TO SAVEPOINT fg_write", 0, NULL, NULL, NULL, NULL, ignored,
                  sizeof ignored);
    st->drv->exec(st->conn, "RELEASE SAVEPOINT fg_write", 0, NULL, NULL, NULL, NULL, ignored,
                  sizeof ignored);
    return rc;
}

/* ---- opening and migrations -------------------------------------------------------- */

/* The URL with the password (user:PASS@ or password=PASS) masked, for messages. */
static char *redact_url(const char *url)
{
    struct fg_buf b = {0};
    const char *p = strstr(url, "://");
    const char *auth = p ? p + 3 : url;
    size_t authlen = strcspn(auth, "/?#");
    const char *at = NULL;

    for (const char *q = auth; q < auth + authlen; q++)
        if (*q == '@')
            at = q;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
        fg_buf_append(&b, url, (size_t)(colon + 1 - url));
        fg_buf_puts(&b, "***");
        url = at;
    }
    while (*url) {
        const char *pw = strstr(url, "password=");
        if (!pw || (pw > url && pw[-1] != '?' && pw[-1] != '&')) {
            if (!pw) {
                fg_buf_puts(&b, url);
                break;
            }
            fg_buf_append(&b, url, (size_t)(pw + 9 - url));
            url = pw + 9;
            continue;
        }
        fg_buf_append(&b, url, (size_t)(pw + 9 - url));
        fg_buf_puts(&b, "***");
        url = pw + 9 + strcspn(pw + 9, "&#");
    }
    return fg_buf_steal(&b);
}

/* Picks the driver and what to hand it: a file path for SQLite (resolved against
 * relative_to), the URL itself for libpq. */
static int parse_url(const char *url, const char *relative_to, const struct fg_store_driver **drv,
                     char **target, char **display, char *err, size_t errlen)
{
    if (!strncmp(url, "sqlite:", 7)) {
        const char *path = url + 7;
        if (!strncmp(path, "//", 2)) {
            if (path[2] != '/') {
                snprintf(err, errlen,
                         "invalid store URL %s: use sqlite:PATH or sqlite:///ABSOLUTE/PATH", url);
                return FG_EINVAL;
            }
            path += 2;
        }
        if (!*path) {
            snprintf(err, errlen, "invalid store URL %s: the file name is missing", url);
            return FG_EINVAL;
        }
        if (path[0] == '/' || !relative_to || !*relative_to) {
            *target = fg_strdup(path);
        } else {
            size_t l = strlen(relative_to);
            *target =
                fg_asprintf("%s%s%s", relative_to, relative_to[l - 1] == '/' ? "" : "/", path);
        }
        *display = fg_asprintf("sqlite:%s", *target);
        *drv = &fg_store_sqlite_driver;
        return 0;
    }
    if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11)) {
        *target = fg_strdup(url);
        *display = redact_url(url);
        *drv = &fg_store_pg_driver;
        return 0;
    }
    snprintf(err, errlen, "invalid store URL %s: use sqlite:PATH or postgresql://...", url);
    return FG_EINVAL;
}

int fg_store_url_check(const char *url, char *err, size_t errlen)
{
    const struct fg_store_driver *drv;
    char *target = NULL, *display = NULL;
    int rc = parse_url(url, NULL, &drv, &target, &display, err, errlen);
    fg_free(target);
    fg_free(display);
    return rc;
}

/* The highest applied migration; 0 for an empty table. Fails when there is no table. */
static int read_version(struct fg_store *st, int *version)
{
    struct rows r;
    int rc = select_rows(st, "SELECT MAX(version) FROM schema_version", 0, NULL, &r);
    if (rc != 0)
        return rc;
    *version = 0;
    if (r.n == 1 && cell(&r, 0, 0))
        rc = parse_int(st, cell(&r, 0, 0), "schema version", version);
    rows_free(&r);
    return rc;
}

/* sql with "@PK@" replaced by the driver's auto-increment primary key. */
static char *expand_sql(const char *sql, const struct fg_store_driver *drv)
{
    struct fg_buf b = {0};
    const char *p;
    while ((p = strstr(sql, "@PK@"))) {
        fg_buf_append(&b, sql, (size_t)(p - sql));
        fg_buf_puts(&b, drv->autoincrement_pk);
        sql = p + 4;
    }
    fg_buf_puts(&b, sql);
    return fg_buf_steal(&b);
}

static int check_not_newer(struct fg_store *st, int version)
{
    int latest = migrations[NMIGRATIONS - 1].version;
    if (version > latest) {
        set_err(st, "schema version %d is newer than this fedgate knows (%d): upgrade fedgate",
                version, latest);
        return FG_EIO;
    }
    return 0;
}

/* Applies the pending migrations. The version is read again under the write lock, so of
 * two processes opening a fresh store at once only the first migrates. */
static int migrate(struct fg_store *st)
{
    int latest = migrations[NMIGRATIONS - 1].version;
    int version = 0;
    char derr[512];
    char *sql = NULL;
    int rc;

    /* The common case needs no write lock: opening for a read must not wait for a writer. */
    if (read_version(st, &version) == 0 && version >= latest)
        return check_not_newer(st, version);

    rc = st->drv->begin_write(st->conn, derr, sizeof derr);
    if (rc != 0) {
        set_err(st, "cannot lock the store to migrate it: %s", derr);
        return rc;
    }
    rc = run(st,
             "CREATE TABLE IF NOT EXISTS schema_version ("
             "version INTEGER PRIMARY KEY, applied BIGINT NOT NULL)",
             0, NULL, NULL, NULL, NULL);
    if (rc == 0)
        rc = read_version(st, &version);
    if (rc == 0)
        rc = check_not_newer(st, version);
    if (rc != 0)
        goto fail;
    for (size_t m = 0; m < NMIGRATIONS; m++) {
        if (migrations[m].version <= version)
            continue;
        for (const char *const *s = migrations[m].sql; *s; s++) {
            sql = expand_sql(*s, st->drv);
            rc = run(st, sql, 0, NULL, NULL, NULL, NULL);
            fg_free(sql);
            sql = NULL;
            if (rc != 0) {
                char cause[sizeof st->err];
                snprintf(cause, sizeof cause, "%s", st->err);
                set_err(st, "migration %d failed: %s", migrations[m].version, cause);
                goto fail;
            }
        }
        char v[24], now[24];
        fmt_i64(v, sizeof v, migrations[m].version);
        fmt_i64(now, sizeof now, fg_time_now());
        const char *const params[] = {v, now};
        rc = run(st, "INSERT INTO schema_version (version, applied) VALUES (?, ?)", 2, params, NULL,
                 NULL, NULL);
        if (rc != 0)
            goto fail;
    }
    rc = st->drv->commit(st->conn, derr, sizeof derr);
    if (rc != 0) {
        set_err(st, "cannot commit the migration: %s", derr);
        goto fail;
    }
    return 0;
fail:
    st->drv->rollback(st->conn);
    return rc;
}

/* Opens target with drv and migrates; takes display and target (freed on failure). */
static int open_target(const struct fg_store_driver *drv, char *target, char *display,
                       struct fg_store **out, char *err, size_t errlen)
{
    char derr[512];
    struct fg_store *st = fg_calloc(1, sizeof *st);
    int rc;

    st->drv = drv;
    st->display = display;
    st->target = target;
    rc = drv->open(target, &st->conn, derr, sizeof derr);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open store %s: %s", st->display, derr);
        goto fail;
    }
    rc = migrate(st);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open store %s: %s", st->display, st->err);
        goto fail;
    }
    *out = st;
    return 0;
fail:
    if (st->conn)
        drv->close(st->conn);
    fg_free(st->display);
    fg_free(st->target);
    fg_free(st);
    return rc;
}

int fg_store_open(const char *url, const char *relative_to, struct fg_store **out, char *err,
                  size_t errlen)
{
    const struct fg_store_driver *drv = NULL;
    char *target = NULL, *display = NULL;
    char derr[512];
    int rc;

    *out = NULL;
    if (!err || !errlen) {
        err = derr;
        errlen = sizeof derr;
    }
    rc = parse_url(url, relative_to, &drv, &target, &display, err, errlen);
    if (rc != 0) {
        fg_free(display);
        fg_free(target);
        return rc;
    }
    return open_target(drv, target, display, out, err, errlen);
}

int fg_store_open_another(const struct fg_store *st, struct fg_store **out, char *err,
                          size_t errlen)
{
    char derr[512];
    *out = NULL;
    if (!err || !errlen) {
        err = derr;
        errlen = sizeof derr;
    }
    return open_target(st->drv, fg_strdup(st->target), fg_strdup(st->display), out, err, errlen);
}

void fg_store_close(struct fg_store *st)
{
    if (!st)
        return;
    if (st->in_tx)
        st->drv->rollback(st->conn);
    st->drv->close(st->conn);
    fg_free(st->display);
    fg_free(st->target);
    fg_free(st);
}

const char *fg_store_error(const struct fg_store *st)
{
    return st->err;
}

const char *fg_store_driver_name(const struct fg_store *st)
{
    return st->drv->name;
}

int fg_store_schema_version(struct fg_store *st, int *version)
{
    return read_version(st, version);
}

/* ---- transactions and revision ------------------------------------------------------ */

int fg_store_in_tx(struct fg_store *st, int (*fn)(struct fg_store *st, void *arg), void *arg)
{
    int rc = fg_store_begin(st);
    if (rc != FG_OK)
        return rc;
    rc = fn(st, arg);
    if (rc == FG_OK)
        return fg_store_commit(st);
    fg_store_rollback(st);
    return rc;
}

int fg_store_begin(struct fg_store *st)
{
    char derr[512];
    if (st->in_tx) {
        set_err(st, "internal error: a store transaction is already open");
        return FG_EIO;
    }
    int rc = st->drv->begin_write(st->conn, derr, sizeof derr);
    if (rc != 0) {
        set_err(st, "cannot start a write transaction on %s: %s", st->display, derr);
        return rc;
    }
    st->in_tx = true;
    st->dirty = false;
    return 0;
}

int fg_store_commit(struct fg_store *st)
{
    char derr[512];
    int rc = 0;
    if (!st->in_tx) {
        set_err(st, "internal error: commit without a store transaction");
        return FG_EIO;
    }
    /* One bump per transaction: readers reload once per committed change set. */
    if (st->dirty)
        rc = run(st, "UPDATE revision SET value = value + 1 WHERE id = 1", 0, NULL, NULL, NULL,
                 NULL);
    if (rc == 0) {
        rc = st->drv->commit(st->conn, derr, sizeof derr);
        if (rc != 0)
            set_err(st, "cannot commit to %s: %s", st->display, derr);
    }
    if (rc != 0)
        st->drv->rollback(st->conn);
    st->in_tx = false;
    st->dirty = false;
    return rc;
}

void fg_store_rollback(struct fg_store *st)
{
    if (!st->in_tx)
        return;
    st->drv->rollback(st->conn);
    st->in_tx = false;
    st->dirty = false;
}

int fg_store_revision(struct fg_store *st, int64_t *rev)
{
    struct rows r;
    int rc = select_rows(st, "SELECT value FROM revision WHERE id = 1", 0, NULL, &r);
    if (rc != 0)
        return rc;
    if (r.n != 1) {
        set_err(st, "the store has no revision row");
        rc = FG_EIO;
    } else {
        rc = parse_i64(st, cell(&r, 0, 0), "revision", rev);
    }
    rows_free(&r);
    return rc;
}

/* ---- partners ------------------------------------------------------------------------ */

/* One row per (partner, additional domain), so that a partner and its domains are read
 * in a single statement, hence from one consistent snapshot. */
#define PARTNER_SELECT                                                                             \
    "SELECT p.domain, p.description, p.subdomains, p.partner_type, p.tls, p.sasl,"                 \
    " p.dialback, p.keepalive, p.connection_limit, p.proxy_fqdn, d.domain"                         \
    " FROM partners p LEFT JOIN partner_domains d ON d.partner = p.domain"
#define PARTNER_NCOLS 11

static int parse_bool_col(struct fg_store *st, const char *s, const char *what, bool *out)
{
    int v;
    int rc = parse_int(st, s, what, &v);
    if (rc == 0)
        *out = v != 0;
    return rc;
}

/* Fills p (fg_partner_init first) from row i; on failure p is cleared. */
static int row_to_partner(struct fg_store *st, const struct rows *r, size_t i, struct fg_partner *p)
{
    int type, tls, sasl, limit = 0;
    int rc;

    fg_partner_init(p, cell(r, i, 0));
    fg_free(p->description);
    p->description = fg_strdup(cell(r, i, 1) ? cell(r, i, 1) : "");
    fg_free(p->proxy_fqdn);
    p->proxy_fqdn = fg_strdup(cell(r, i, 9) ? cell(r, i, 9) : "");
    if ((rc = parse_bool_col(st, cell(r, i, 2), "partners.subdomains", &p->subdomains)) ||
        (rc = parse_enum(st, fg_ptype_parse, cell(r, i, 3), "partners.partner_type", &type)) ||
        (rc = parse_enum(st, fg_neg_parse, cell(r, i, 4), "partners.tls", &tls)) ||
        (rc = parse_enum(st, fg_neg_parse, cell(r, i, 5), "partners.sasl", &sasl)) ||
        (rc = parse_bool_col(st, cell(r, i, 6), "partners.dialback", &p->dialback)) ||
        (rc = parse_bool_col(st, cell(r, i, 7), "partners.keepalive", &p->keepalive)) ||
        (cell(r, i, 8) && (rc = parse_int(st, cell(r, i, 8), "partners.connection_limit", &limit))))
        goto fail;
    p->type = (enum fg_ptype)type;
    p->tls = (enum fg_neg)tls;
    p->sasl = (enum fg_neg)sasl;
    p->connection_limit = limit;
    return 0;
fail:
    fg_partner_clear(p);
    return rc;
}

/* Turns joined rows (grouped by partner, domains in position order) into partners. */
static int rows_to_partners(struct fg_store *st, const struct rows *r, struct fg_partner **out,
                            size_t *n)
{
    struct fg_partner *v = fg_calloc(r->n + 1, sizeof *v);
    size_t count = 0;
    int rc = 0;

    if (r->n && r->ncols != PARTNER_NCOLS) {
        set_err(st, "internal error: unexpected partner columns");
        rc = FG_EIO;
        goto fail;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (count == 0 || cmp_str(v[count - 1].domain, cell(r, i, 0)) != 0) {
            rc = row_to_partner(st, r, i, &v[count]);
            if (rc != 0)
                goto fail;
            count++;
        }
        if (cell(r, i, 10))
            fg_strv_push(&v[count - 1].additional, cell(r, i, 10));
    }
    *out = v;
    *n = count;
    return 0;
fail:
    fg_store_partners_free(v, count);
    return rc;
}

static int cmp_partner(const void *a, const void *b)
{
    return cmp_str(((const struct fg_partner *)a)->domain, ((const struct fg_partner *)b)->domain);
}

int fg_store_partner_list(struct fg_store *st, struct fg_partner **out, size_t *n)
{
    struct rows r;
    /* Ordered so that each partner's rows are adjacent and its domains in position order;
     * the partners themselves are then sorted by bytes. */
    int rc = select_rows(st, PARTNER_SELECT " ORDER BY p.domain, d.position", 0, NULL, &r);
    if (rc != 0)
        return rc;
    rc = rows_to_partners(st, &r, out, n);
    rows_free(&r);
    if (rc == 0)
        qsort(*out, *n, sizeof **out, cmp_partner);
    return rc;
}

void fg_store_partners_free(struct fg_partner *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        fg_partner_clear(&v[i]);
    fg_free(v);
}

int fg_store_partner_get(struct fg_store *st, const char *domain, struct fg_partner *out)
{
    struct rows r;
    struct fg_partner *v = NULL;
    size_t n = 0;
    const char *const params[] = {domain};
    int rc =
        select_rows(st, PARTNER_SELECT " WHERE p.domain = ? ORDER BY d.position", 1, params, &r);
    if (rc != 0)
        return rc;
    rc = rows_to_partners(st, &r, &v, &n);
    rows_free(&r);
    if (rc != 0)
        return rc;
    if (n != 1) {
        fg_store_partners_free(v, n);
        set_err(st, "partner %s not found", domain);
        return FG_ENOTFOUND;
    }
    *out = v[0]; /* moves the owned strings to the caller */
    fg_free(v);
    return 0;
}

int fg_store_partner_owner(struct fg_store *st, const char *d, char *primary, size_t len)
{
    static const char *const queries[] = {
        "SELECT domain FROM partners WHERE domain = ?",
        "SELECT partner FROM partner_domains WHERE domain = ?",
    };
    const char *const params[] = {d};
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        struct rows r;
        int rc = select_rows(st, queries[q], 1, params, &r);
        if (rc != 0)
            return rc;
        if (r.n > 0) {
            if ((size_t)snprintf(primary, len, "%s", cell(&r, 0, 0)) >= len) {
                set_err(st, "the primary domain of %s does not fit in %zu bytes", d, len);
                rc = FG_ELIMIT;
            }
            rows_free(&r);
            return rc;
        }
        rows_free(&r);
    }
    set_err(st, "no partner has the domain %s", d);
    return FG_ENOTFOUND;
}

/* The partner columns after "domain", as text parameters, in PARTNER_SELECT order. */
struct partner_params {
    char subdomains[2], dialback[2], keepalive[2], limit[16];
    const char *v[9];
};

static void partner_params(const struct fg_partner *p, struct partner_params *pp)
{
    snprintf(pp->subdomains, sizeof pp->subdomains, "%d", p->subdomains ? 1 : 0);
    snprintf(pp->dialback, sizeof pp->dialback, "%d", p->dialback ? 1 : 0);
    snprintf(pp->keepalive, sizeof pp->keepalive, "%d", p->keepalive ? 1 : 0);
    snprintf(pp->limit, sizeof pp->limit, "%d", p->connection_limit);
    pp->v[0] = p->description ? p->description : "";
    pp->v[1] = pp->subdomains;
    pp->v[2] = fg_ptype_name(p->type);
    pp->v[3] = fg_neg_name(p->tls);
    pp->v[4] = fg_neg_name(p->sasl);
    pp->v[5] = pp->dialback;
    pp->v[6] = pp->keepalive;
    pp->v[7] = p->connection_limit > 0 ? pp->limit : NULL; /* 0 = default = NULL */
    pp->v[8] = p->proxy_fqdn ? p->proxy_fqdn : "";
}

static int insert_domains(struct fg_store *st, const struct fg_partner *p)
{
    for (size_t i = 0; p->additional && p->additional[i]; i++) {
        char pos[24];
        fmt_i64(pos, sizeof pos, (int64_t)i);
        const char *const params[] = {p->additional[i], p->domain, pos};
        int rc = run(st, "INSERT INTO partner_domains (domain, partner, position) VALUES (?, ?, ?)",
                     3, params, NULL, NULL, NULL);
        if (rc == FG_EEXISTS)
            set_err(st, "the domain %s already belongs to a partner", p->additional[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int fg_store_partner_insert(struct fg_store *st, const struct fg_partner *p)
{
    struct partner_params pp;
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    partner_params(p, &pp);
    const char *const params[] = {p->domain, pp.v[0], pp.v[1], pp.v[2], pp.v[3],
                                  pp.v[4],   pp.v[5], pp.v[6], pp.v[7], pp.v[8]};
    rc = run(st,
             "INSERT INTO partners (domain, description, subdomains, partner_type, tls, sasl,"
             " dialback, keepalive, connection_limit, proxy_fqdn)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             10, params, NULL, NULL, NULL);
    if (rc == FG_EEXISTS)
        set_err(st, "partner %s already exists", p->domain);
    if (rc == 0)
        rc = insert_domains(st, p);
    return write_end(st, rc, true);
}

int fg_store_partner_update(struct fg_store *st, const struct fg_partner *p)
{
    struct partner_params pp;
    long changes = 0;
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    partner_params(p, &pp);
    const char *const params[] = {pp.v[0], pp.v[1], pp.v[2], pp.v[3], pp.v[4],
                                  pp.v[5], pp.v[6], pp.v[7], pp.v[8], p->domain};
    const char *const dparams[] = {p->domain};
    rc = run(st,
             "UPDATE partners SET description = ?, subdomains = ?, partner_type = ?, tls = ?,"
             " sasl = ?, dialback = ?, keepalive = ?, connection_limit = ?, proxy_fqdn = ?"
             " WHERE domain = ?",
             10, params, NULL, NULL, &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "partner %s not found", p->domain);
        rc = FG_ENOTFOUND;
    }
    if (rc == 0)
        rc = run(st, "DELETE FROM partner_domains WHERE partner = ?", 1, dparams, NULL, NULL, NULL);
    if (rc == 0)
        rc = insert_domains(st, p);
    return write_end(st, rc, true);
}

int fg_store_partner_delete(struct fg_store *st, const char *domain)
{
    long changes = 0;
    const char *const params[] = {domain};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    /* Explicit rather than relying on ON DELETE CASCADE alone, which SQLite only honours
     * on connections that enabled foreign keys. */
    rc = run(st, "DELETE FROM partner_domains WHERE partner = ?", 1, params, NULL, NULL, NULL);
    if (rc == 0)
        rc = run(st, "DELETE FROM partners WHERE domain = ?", 1, params, NULL, NULL, &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "partner %s not found", domain);
        rc = FG_ENOTFOUND;
    }
    return write_end(st, rc, true);
}

/* ---- gateway settings and the dialback secret --------------------------------------- */

int fg_store_gateway_get(struct fg_store *st, struct fg_gateway *g)
{
    struct rows r;
    struct fg_gateway tmp;
    char why[256];
    int rc = select_rows(st, "SELECT key, value FROM gateway", 0, NULL, &r);
    if (rc != 0)
        return rc;
    fg_gateway_defaults(&tmp);
    for (size_t i = 0; i < r.n; i++) {
        int src = fg_gateway_set_text(&tmp, cell(&r, i, 0), cell(&r, i, 1), why, sizeof why);
        /* A key this version does not know (written by a newer one) is not an error. */
        if (src == FG_ENOTFOUND)
            continue;
        if (src != 0) {
            set_err(st, "the store holds an invalid gateway setting %s: %s", cell(&r, i, 0), why);
            rc = FG_EIO;
            break;
        }
    }
    rows_free(&r);
    if (rc == 0)
        *g = tmp;
    return rc;
}

static int upsert(struct fg_store *st, const char *sql, const char *key, const char *value)
{
    const char *const params[] = {key, value};
    return run(st, sql, 2, params, NULL, NULL, NULL);
}

int fg_store_gateway_put(struct fg_store *st, const struct fg_gateway *g)
{
    char value[64];
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    /* Every key is written, defaults too: the table of policy.h is the only list. */
    for (size_t i = 0; rc == 0 && i < fg_gateway_nkeys; i++) {
        const char *key = fg_gateway_keys[i].name;
        if (fg_gateway_get_text(g, key, value, sizeof value) != 0) {
            set_err(st, "internal error: gateway setting %s has no text form", key);
            rc = FG_EIO;
            break;
        }
        rc = upsert(st,
                    "INSERT INTO gateway (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    key, value);
    }
    return write_end(st, rc, true);
}

int fg_store_dialback_secret_get(struct fg_store *st, char *out, size_t len)
{
    struct rows r;
    const char *const params[] = {"dialback"};
    int rc = select_rows(st, "SELECT value FROM secrets WHERE name = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    if (r.n == 0) {
        set_err(st, "no dialback secret was generated yet");
        rc = FG_ENOTFOUND;
    } else if ((size_t)snprintf(out, len, "%s", cell(&r, 0, 0)) >= len) {
        set_err(st, "the dialback secret does not fit in %zu bytes", len);
        rc = FG_ELIMIT;
    }
    rows_free(&r);
    return rc;
}

int fg_store_dialback_secret_set(struct fg_store *st, const char *secret)
{
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = upsert(st,
                "INSERT INTO secrets (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                "dialback", secret);
    return write_end(st, rc, true);
}

/* ---- users ---------------------------------------------------------------------------- */

struct user_params {
    char it256[16], it1[16];
    const char *v[8];
};

static void user_params(const struct fg_user *u, struct user_params *up)
{
    snprintf(up->it256, sizeof up->it256, "%d", u->sha256.iterations);
    snprintf(up->it1, sizeof up->it1, "%d", u->sha1.iterations);
    up->v[0] = u->sha256.salt;
    up->v[1] = up->it256;
    up->v[2] = u->sha256.stored_key;
    up->v[3] = u->sha256.server_key;
    up->v[4] = u->sha1.salt;
    up->v[5] = up->it1;
    up->v[6] = u->sha1.stored_key;
    up->v[7] = u->sha1.server_key;
}

static int row_to_cred(struct fg_store *st, const struct rows *r, size_t col,
                       struct fg_scram_cred *c, const char *mech)
{
    char what[64];
    snprintf(what, sizeof what, "%s iteration count", mech);
    int rc = copy_field(st, c->salt, sizeof c->salt, cell(r, 0, col), "SCRAM salt");
    if (rc == 0)
        rc = parse_int(st, cell(r, 0, col + 1), what, &c->iterations);
    if (rc == 0)
        rc = copy_field(st, c->stored_key, sizeof c->stored_key, cell(r, 0, col + 2),
                        "SCRAM StoredKey");
    if (rc == 0)
        rc = copy_field(st, c->server_key, sizeof c->server_key, cell(r, 0, col + 3),
                        "SCRAM ServerKey");
    return rc;
}

int fg_store_user_add(struct fg_store *st, const struct fg_user *u)
{
    struct user_params up;
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    user_params(u, &up);
    const char *const params[] = {u->jid,  up.v[0], up.v[1], up.v[2], up.v[3],
                                  up.v[4], up.v[5], up.v[6], up.v[7]};
    rc = run(st,
             "INSERT INTO users (jid, sha256_salt, sha256_iterations, sha256_stored_key,"
             " sha256_server_key, sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
             9, params, NULL, NULL, NULL);
    if (rc == FG_EEXISTS)
        set_err(st, "user %s already exists", u->jid);
    return write_end(st, rc, true);
}

int fg_store_user_get(struct fg_store *st, const char *jid, struct fg_user *u)
{
    struct rows r;
    struct fg_user *tmp = NULL;
    const char *const params[] = {jid};
    int rc = select_rows(st,
                         "SELECT jid, sha256_salt, sha256_iterations, sha256_stored_key,"
                         " sha256_server_key, sha1_salt, sha1_iterations, sha1_stored_key,"
                         " sha1_server_key FROM users WHERE jid = ?",
                         1, params, &r);
    if (rc != 0)
        return rc;
    if (r.n == 0) {
        set_err(st, "user %s not found", jid);
        rc = FG_ENOTFOUND;
        goto done;
    }
    /* Built aside (the struct is 3 KB) so that u is only written on success. */
    tmp = fg_calloc(1, sizeof *tmp);
    rc = copy_field(st, tmp->jid, sizeof tmp->jid, cell(&r, 0, 0), "JID");
    if (rc == 0)
        rc = row_to_cred(st, &r, 1, &tmp->sha256, "SCRAM-SHA-256");
    if (rc == 0)
        rc = row_to_cred(st, &r, 5, &tmp->sha1, "SCRAM-SHA-1");
    if (rc == 0)
        *u = *tmp;
done:
    fg_free(tmp);
    rows_free(&r);
    return rc;
}

int fg_store_user_set_creds(struct fg_store *st, const struct fg_user *u)
{
    struct user_params up;
    long changes = 0;
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    user_params(u, &up);
    const char *const params[] = {up.v[0], up.v[1], up.v[2], up.v[3], up.v[4],
                                  up.v[5], up.v[6], up.v[7], u->jid};
    rc = run(st,
             "UPDATE users SET sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?,"
             " sha256_server_key = ?, sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?,"
             " sha1_server_key = ? WHERE jid = ?",
             9, params, NULL, NULL, &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "user %s not found", u->jid);
        rc = FG_ENOTFOUND;
    }
    return write_end(st, rc, true);
}

/* DELETE of one row by key; FG_ENOTFOUND (with "KIND NAME not found") when none. */
static int delete_one(struct fg_store *st, const char *sql, const char *key, const char *kind)
{
    long changes = 0;
    const char *const params[] = {key};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st, sql, 1, params, NULL, NULL, &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "%s %s not found", kind, key);
        rc = FG_ENOTFOUND;
    }
    return write_end(st, rc, true);
}

/* The user's roster and offline messages go with it; its roster_version row stays, so
 * that an account created again under the same JID never reuses a version a client may
 * still cache (RFC 6121 section 2.6). Entries in other users' rosters stay too: they
 * belong to those users. */
int fg_store_user_delete(struct fg_store *st, const char *jid)
{
    long changes = 0;
    const char *const params[] = {jid};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st, "DELETE FROM roster WHERE owner = ?", 1, params, NULL, NULL, NULL);
    if (rc == 0)
        rc = run(st, "DELETE FROM offline WHERE recipient = ?", 1, params, NULL, NULL, NULL);
    if (rc == 0)
        rc = run(st, "DELETE FROM users WHERE jid = ?", 1, params, NULL, NULL, &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "user %s not found", jid);
        rc = FG_ENOTFOUND;
    }
    return write_end(st, rc, true);
}

int fg_store_user_list(struct fg_store *st, char ***jids)
{
    struct rows r;
    int rc = select_rows(st, "SELECT jid FROM users", 0, NULL, &r);
    if (rc != 0)
        return rc;
    char **v = fg_calloc(r.n + 1, sizeof *v);
    for (size_t i = 0; i < r.n; i++)
        v[i] = fg_strdup(cell(&r, i, 0));
    qsort(v, r.n, sizeof *v, cmp_strp);
    rows_free(&r);
    *jids = v;
    return 0;
}

/* ---- administrators ------------------------------------------------------------------- */

#define ADMIN_SELECT "SELECT name, role, hash FROM admins"

static int row_to_admin(struct fg_store *st, const struct rows *r, size_t i, struct fg_admin *a)
{
    int role;
    int rc = copy_field(st, a->name, sizeof a->name, cell(r, i, 0), "administrator name");
    if (rc == 0)
        rc = parse_enum(st, fg_role_parse, cell(r, i, 1), "administrator role", &role);
    if (rc == 0)
        rc = copy_field(st, a->hash, sizeof a->hash, cell(r, i, 2), "password hash");
    if (rc == 0)
        a->role = (enum fg_role)role;
    return rc;
}

int fg_store_admin_add(struct fg_store *st, const struct fg_admin *a)
{
    const char *const params[] = {a->name, fg_role_name(a->role), a->hash};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st, "INSERT INTO admins (name, role, hash) VALUES (?, ?, ?)", 3, params, NULL, NULL,
             NULL);
    if (rc == FG_EEXISTS)
        set_err(st, "administrator %s already exists", a->name);
    return write_end(st, rc, true);
}

int fg_store_admin_get(struct fg_store *st, const char *name, struct fg_admin *a)
{
    struct rows r;
    struct fg_admin tmp;
    const char *const params[] = {name};
    int rc = select_rows(st, ADMIN_SELECT " WHERE name = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    if (r.n == 0) {
        set_err(st, "administrator %s not found", name);
        rc = FG_ENOTFOUND;
    } else {
        rc = row_to_admin(st, &r, 0, &tmp);
        if (rc == 0)
            *a = tmp;
    }
    rows_free(&r);
    return rc;
}

int fg_store_admin_update(struct fg_store *st, const struct fg_admin *a)
{
    long changes = 0;
    const char *const params[] = {fg_role_name(a->role), a->hash, a->name};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st, "UPDATE admins SET role = ?, hash = ? WHERE name = ?", 3, params, NULL, NULL,
             &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "administrator %s not found", a->name);
        rc = FG_ENOTFOUND;
    }
    return write_end(st, rc, true);
}

int fg_store_admin_delete(struct fg_store *st, const char *name)
{
    long changes = 0;
    const char *const params[] = {name};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    /* The tokens of an administrator act for it: they go with it (explicitly, as for
     * partner domains, so that it does not depend on SQLite's foreign_keys setting). */
    rc = run(st, "DELETE FROM tokens WHERE admin = ?", 1, params, NULL, NULL, NULL);
    if (rc == 0)
        rc = run(st, "DELETE FROM admins WHERE name = ?", 1, params, NULL, NULL, &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "administrator %s not found", name);
        rc = FG_ENOTFOUND;
    }
    return write_end(st, rc, true);
}

static int cmp_admin(const void *a, const void *b)
{
    return cmp_str(((const struct fg_admin *)a)->name, ((const struct fg_admin *)b)->name);
}

int fg_store_admin_list(struct fg_store *st, struct fg_admin **out, size_t *n)
{
    struct rows r;
    int rc = select_rows(st, ADMIN_SELECT, 0, NULL, &r);
    if (rc != 0)
        return rc;
    struct fg_admin *v = fg_calloc(r.n + 1, sizeof *v);
    for (size_t i = 0; rc == 0 && i < r.n; i++)
        rc = row_to_admin(st, &r, i, &v[i]);
    if (rc == 0) {
        qsort(v, r.n, sizeof *v, cmp_admin);
        *out = v;
        *n = r.n;
    } else {
        fg_free(v);
    }
    rows_free(&r);
    return rc;
}

int fg_store_admin_count_role(struct fg_store *st, enum fg_role role, int *n)
{
    struct rows r;
    const char *const params[] = {fg_role_name(role)};
    int rc = select_rows(st, "SELECT COUNT(*) FROM admins WHERE role = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    rc = r.n == 1 ? parse_int(st, cell(&r, 0, 0), "administrator count", n) : FG_EIO;
    rows_free(&r);
    return rc;
}

/* ---- API tokens ----------------------------------------------------------------------- */

#define TOKEN_SELECT "SELECT id, admin, role, hash, created, expires FROM tokens"

static int row_to_token(struct fg_store *st, const struct rows *r, size_t i, struct fg_token *t)
{
    int role;
    int rc = copy_field(st, t->id, sizeof t->id, cell(r, i, 0), "token id");
    if (rc == 0)
        rc = copy_field(st, t->admin, sizeof t->admin, cell(r, i, 1), "token administrator");
    if (rc == 0)
        rc = parse_enum(st, fg_role_parse, cell(r, i, 2), "token role", &role);
    if (rc == 0)
        rc = copy_field(st, t->hash, sizeof t->hash, cell(r, i, 3), "token hash");
    if (rc == 0)
        rc = parse_i64(st, cell(r, i, 4), "token creation time", &t->created);
    t->expires = 0;
    if (rc == 0 && cell(r, i, 5))
        rc = parse_i64(st, cell(r, i, 5), "token expiry time", &t->expires);
    if (rc == 0)
        t->role = (enum fg_role)role;
    return rc;
}

int fg_store_token_add(struct fg_store *st, const struct fg_token *t)
{
    char created[24], expires[24];
    struct rows r;
    const char *const aparams[] = {t->admin};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    /* Checked here for a clear FG_ENOTFOUND instead of a foreign key error. */
    rc = select_rows(st, "SELECT name FROM admins WHERE name = ?", 1, aparams, &r);
    if (rc == 0) {
        if (r.n == 0) {
            set_err(st, "administrator %s not found", t->admin);
            rc = FG_ENOTFOUND;
        }
        rows_free(&r);
    }
    if (rc == 0) {
        fmt_i64(created, sizeof created, t->created);
        fmt_i64(expires, sizeof expires, t->expires);
        const char *const params[] = {t->id,   t->admin, fg_role_name(t->role),
                                      t->hash, created,  t->expires ? expires : NULL};
        rc = run(st,
                 "INSERT INTO tokens (id, admin, role, hash, created, expires)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
                 6, params, NULL, NULL, NULL);
        if (rc == FG_EEXISTS)
            set_err(st, "token %s already exists", t->id);
    }
    return write_end(st, rc, true);
}

int fg_store_token_by_hash(struct fg_store *st, const char *hash, struct fg_token *t)
{
    struct rows r;
    struct fg_token tmp;
    const char *const params[] = {hash};
    int rc = select_rows(st, TOKEN_SELECT " WHERE hash = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    if (r.n == 0) {
        set_err(st, "no token has this hash");
        rc = FG_ENOTFOUND;
    } else {
        rc = row_to_token(st, &r, 0, &tmp);
        if (rc == 0)
            *t = tmp;
    }
    rows_free(&r);
    return rc;
}

static int cmp_token(const void *a, const void *b)
{
    const struct fg_token *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return cmp_str(x->id, y->id);
}

/* Oldest first (creation time, then id). */
int fg_store_token_list(struct fg_store *st, struct fg_token **out, size_t *n)
{
    struct rows r;
    int rc = select_rows(st, TOKEN_SELECT, 0, NULL, &r);
    if (rc != 0)
        return rc;
    struct fg_token *v = fg_calloc(r.n + 1, sizeof *v);
    for (size_t i = 0; rc == 0 && i < r.n; i++)
        rc = row_to_token(st, &r, i, &v[i]);
    if (rc == 0) {
        qsort(v, r.n, sizeof *v, cmp_token);
        *out = v;
        *n = r.n;
    } else {
        fg_free(v);
    }
    rows_free(&r);
    return rc;
}

int fg_store_token_delete(struct fg_store *st, const char *id)
{
    return delete_one(st, "DELETE FROM tokens WHERE id = ?", id, "token");
}

/* ---- audit log -------------------------------------------------------------------------- */

int fg_store_audit_add(struct fg_store *st, const struct fg_audit *a)
{
    char when[24];
    /* A record must always say when: 0 means "now". */
    fmt_i64(when, sizeof when, a->time ? a->time : fg_time_now());
    const char *const params[] = {when,
                                  a->actor ? a->actor : "",
                                  a->address ? a->address : "",
                                  a->action ? a->action : "",
                                  a->object ? a->object : "",
                                  a->before,
                                  a->after};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st,
             "INSERT INTO audit (time, actor, address, action, object, before_json, after_json)"
             " VALUES (?, ?, ?, ?, ?, ?, ?)",
             7, params, NULL, NULL, NULL);
    return write_end(st, rc, true);
}

static char *dup_or_null(const char *s)
{
    return s ? fg_strdup(s) : NULL;
}

#define AUDIT_SELECT                                                                               \
    "SELECT id, time, actor, address, action, object, before_json, after_json FROM audit"          \
    " WHERE time >= ? ORDER BY id DESC"

int fg_store_audit_list(struct fg_store *st, int64_t since, size_t limit, struct fg_audit **out,
                        size_t *n)
{
    char s_since[24], s_limit[24];
    struct rows r;
    struct fg_audit *v = NULL;
    size_t count = 0;
    int rc;

    if (limit > (size_t)INT64_MAX)
        limit = 0; /* more than any store holds: no limit (and no bigint overflow) */
    fmt_i64(s_since, sizeof s_since, since);
    snprintf(s_limit, sizeof s_limit, "%zu", limit);
    const char *const params[] = {s_since, s_limit};
    rc = select_rows(st, limit > 0 ? AUDIT_SELECT " LIMIT ?" : AUDIT_SELECT, limit > 0 ? 2 : 1,
                     params, &r);
    if (rc != 0)
        return rc;
    v = fg_calloc(r.n + 1, sizeof *v);
    for (; count < r.n; count++) {
        struct fg_audit *a = &v[count];
        if ((rc = parse_i64(st, cell(&r, count, 0), "audit id", &a->id)) ||
            (rc = parse_i64(st, cell(&r, count, 1), "audit time", &a->time)))
            goto fail;
        a->actor = fg_strdup(cell(&r, count, 2) ? cell(&r, count, 2) : "");
        a->address = fg_strdup(cell(&r, count, 3) ? cell(&r, count, 3) : "");
        a->action = fg_strdup(cell(&r, count, 4) ? cell(&r, count, 4) : "");
        a->object = fg_strdup(cell(&r, count, 5) ? cell(&r, count, 5) : "");
        a->before = dup_or_null(cell(&r, count, 6));
        a->after = dup_or_null(cell(&r, count, 7));
    }
    rows_free(&r);
    *out = v;
    *n = count;
    return 0;
fail:
    rows_free(&r);
    fg_store_audits_free(v, count + 1); /* the failed record may hold nothing: all NULL */
    return rc;
}

void fg_store_audits_free(struct fg_audit *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        fg_free(v[i].actor);
        fg_free(v[i].address);
        fg_free(v[i].action);
        fg_free(v[i].object);
        fg_free(v[i].before);
        fg_free(v[i].after);
    }
    fg_free(v);
}

/* ---- metadata -------------------------------------------------------------------------- */

int fg_store_meta_get(struct fg_store *st, const char *key, char **value)
{
    struct rows r;
    const char *const params[] = {key};
    int rc = select_rows(st, "SELECT value FROM meta WHERE key = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    if (r.n == 0) {
        set_err(st, "no metadata %s", key);
        rc = FG_ENOTFOUND;
    } else {
        *value = fg_strdup(cell(&r, 0, 0));
    }
    rows_free(&r);
    return rc;
}

/* Unlike the other writes, this one may run outside a transaction (the daemon's
 * heartbeat is a single statement) and never bumps the revision. A NULL value removes
 * the key. */
int fg_store_meta_set(struct fg_store *st, const char *key, const char *value)
{
    bool framed = st->in_tx;
    int rc = framed ? write_begin(st) : 0;
    if (rc != 0)
        return rc;
    if (value) {
        rc = upsert(st,
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    key, value);
    } else {
        const char *const params[] = {key};
        rc = run(st, "DELETE FROM meta WHERE key = ?", 1, params, NULL, NULL, NULL);
    }
    return framed ? write_end(st, rc, false) : rc;
}

/* ---- rosters ------------------------------------------------------------------------ */

/* Roster and offline writes never bump the configuration revision: they are user data,
 * and a bump would make every daemon reload its configuration after each roster change. */

static const char *const sub_names[] = {"none", "to", "from", "both"};

static int parse_sub(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, sub_names[i]))
            return i;
    return -1;
}

void fg_roster_item_clear(struct fg_roster_item *it)
{
    fg_free(it->contact);
    fg_free(it->name);
    fg_strv_free(it->groups);
    memset(it, 0, sizeof *it);
}

void fg_store_roster_items_free(struct fg_roster_item *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        fg_roster_item_clear(&v[i]);
    fg_free(v);
}

static char *groups_to_json(char *const *groups)
{
    json_t *a = json_array();
    for (size_t i = 0; groups && groups[i]; i++)
        json_array_append_new(a, json_string(groups[i]));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    /* json_string refuses invalid UTF-8; the IM layer only stores valid text, so a NULL
     * here is a programming error that must not lose the item: store no groups. */
    char *out = fg_strdup(s ? s : "[]");
    free(s);
    return out;
}

static int groups_from_json(struct fg_store *st, const char *text, char ***out)
{
    json_error_t jerr;
    json_t *a = text ? json_loads(text, 0, &jerr) : NULL;
    char **v = NULL;
    if (!a || !json_is_array(a)) {
        json_decref(a);
        set_err(st, "the store holds invalid roster groups: '%s'", text ? text : "NULL");
        return FG_EIO;
    }
    size_t i;
    json_t *g;
    json_array_foreach(a, i, g)
    {
        if (!json_is_string(g)) {
            json_decref(a);
            fg_strv_free(v);
            set_err(st, "the store holds invalid roster groups: '%s'", text);
            return FG_EIO;
        }
        fg_strv_push(&v, json_string_value(g));
    }
    json_decref(a);
    *out = v;
    return 0;
}

#define ROSTER_COLS "contact, name, subscription, ask, pending_in, approved, listed, groups_json"

/* Fills it from columns first..first+7 of row i (ROSTER_COLS order). */
static int row_to_roster(struct fg_store *st, const struct rows *r, size_t i, size_t first,
                         struct fg_roster_item *it)
{
    int sub;
    bool ask, pin, appr, listed;
    memset(it, 0, sizeof *it);
    int rc = parse_enum(st, parse_sub, cell(r, i, first + 2), "roster subscription", &sub);
    if (rc == 0)
        rc = parse_bool_col(st, cell(r, i, first + 3), "roster.ask", &ask);
    if (rc == 0)
        rc = parse_bool_col(st, cell(r, i, first + 4), "roster.pending_in", &pin);
    if (rc == 0)
        rc = parse_bool_col(st, cell(r, i, first + 5), "roster.approved", &appr);
    if (rc == 0)
        rc = parse_bool_col(st, cell(r, i, first + 6), "roster.listed", &listed);
    if (rc == 0)
        rc = groups_from_json(st, cell(r, i, first + 7), &it->groups);
    if (rc != 0)
        return rc;
    it->contact = fg_strdup(cell(r, i, first) ? cell(r, i, first) : "");
    it->name = dup_or_null(cell(r, i, first + 1));
    it->sub = (enum fg_roster_sub)sub;
    it->ask = ask;
    it->pending_in = pin;
    it->approved = appr;
    it->listed = listed;
    return 0;
}

static int set_roster_version(struct fg_store *st, const char *owner, int64_t version)
{
    char v[24];
    fmt_i64(v, sizeof v, version);
    return upsert(st,
                  "INSERT INTO roster_version (owner, version) VALUES (?, ?)"
                  " ON CONFLICT (owner) DO UPDATE SET version = excluded.version",
                  owner, v);
}

int fg_store_roster_put(struct fg_store *st, const char *owner, const struct fg_roster_item *it,
                        int64_t version)
{
    if ((unsigned)it->sub > FG_ROSTER_BOTH || !it->contact) {
        set_err(st, "internal error: invalid roster item");
        return FG_EINVAL;
    }
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    char *groups = groups_to_json(it->groups);
    const char *const params[] = {owner,
                                  it->contact,
                                  it->name,
                                  sub_names[it->sub],
                                  it->ask ? "1" : "0",
                                  it->pending_in ? "1" : "0",
                                  it->approved ? "1" : "0",
                                  it->listed ? "1" : "0",
                                  groups};
    rc = run(st,
             "INSERT INTO roster (owner, " ROSTER_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
             " ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name,"
             " subscription = excluded.subscription, ask = excluded.ask,"
             " pending_in = excluded.pending_in, approved = excluded.approved,"
             " listed = excluded.listed, groups_json = excluded.groups_json",
             9, params, NULL, NULL, NULL);
    fg_free(groups);
    if (rc == 0)
        rc = set_roster_version(st, owner, version);
    return write_end(st, rc, false);
}

int fg_store_roster_delete(struct fg_store *st, const char *owner, const char *contact,
                           int64_t version)
{
    long changes = 0;
    const char *const params[] = {owner, contact};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st, "DELETE FROM roster WHERE owner = ? AND contact = ?", 2, params, NULL, NULL,
             &changes);
    if (rc == 0 && changes == 0) {
        set_err(st, "roster item %s of %s not found", contact, owner);
        rc = FG_ENOTFOUND;
    }
    if (rc == 0)
        rc = set_roster_version(st, owner, version);
    return write_end(st, rc, false);
}

static int cmp_roster(const void *a, const void *b)
{
    return cmp_str(((const struct fg_roster_item *)a)->contact,
                   ((const struct fg_roster_item *)b)->contact);
}

int fg_store_roster_get(struct fg_store *st, const char *owner, struct fg_roster_item **items,
                        size_t *n, int64_t *version)
{
    struct rows r, vr;
    const char *const params[] = {owner};
    struct fg_roster_item *v = NULL;
    size_t count = 0;
    int64_t ver = 0;
    int rc = select_rows(st, "SELECT " ROSTER_COLS " FROM roster WHERE owner = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    rc = select_rows(st, "SELECT version FROM roster_version WHERE owner = ?", 1, params, &vr);
    if (rc != 0) {
        rows_free(&r);
        return rc;
    }
    if (vr.n == 1)
        rc = parse_i64(st, cell(&vr, 0, 0), "roster version", &ver);
    v = fg_calloc(r.n + 1, sizeof *v);
    for (; rc == 0 && count < r.n; count++)
        rc = row_to_roster(st, &r, count, 0, &v[count]);
    if (rc == 0) {
        qsort(v, count, sizeof *v, cmp_roster);
        *items = v;
        *n = count;
        *version = ver;
    } else {
        fg_store_roster_items_free(v, count);
    }
    rows_free(&r);
    rows_free(&vr);
    return rc;
}

/* Row indices sorted by a text column, so that rows of one owner are adjacent whatever
 * the database's collation. */
struct row_sort {
    const struct rows *r;
    size_t row;
};

static int cmp_row_sort(const void *a, const void *b)
{
    const struct row_sort *x = a, *y = b;
    int c = cmp_str(cell(x->r, x->row, 0), cell(y->r, y->row, 0));
    if (c)
        return c;
    return x->row < y->row ? -1 : x->row > y->row;
}

int fg_store_roster_each(struct fg_store *st, fg_store_roster_cb cb, void *ctx)
{
    struct rows r, vr;
    struct row_sort *order = NULL, *vorder = NULL;
    struct fg_roster_item *items = NULL;
    size_t nitems = 0;
    int rc = select_rows(st, "SELECT owner, " ROSTER_COLS " FROM roster", 0, NULL, &r);
    if (rc != 0)
        return rc;
    rc = select_rows(st, "SELECT owner, version FROM roster_version", 0, NULL, &vr);
    if (rc != 0) {
        rows_free(&r);
        return rc;
    }
    order = fg_calloc(r.n + 1, sizeof *order);
    vorder = fg_calloc(vr.n + 1, sizeof *vorder);
    for (size_t i = 0; i < r.n; i++)
        order[i] = (struct row_sort){&r, i};
    for (size_t i = 0; i < vr.n; i++)
        vorder[i] = (struct row_sort){&vr, i};
    qsort(order, r.n, sizeof *order, cmp_row_sort);
    qsort(vorder, vr.n, sizeof *vorder, cmp_row_sort);
    items = fg_calloc(r.n + 1, sizeof *items);

    /* Merge the two sorted lists: owners with items, with a version, or both. */
    size_t i = 0, j = 0;
    while (rc == 0 && (i < r.n || j < vr.n)) {
        const char *oi = i < r.n ? cell(&r, order[i].row, 0) : NULL;
        const char *oj = j < vr.n ? cell(&vr, vorder[j].row, 0) : NULL;
        const char *owner = !oi ? oj : !oj ? oi : cmp_str(oi, oj) <= 0 ? oi : oj;
        int64_t version = 0;
        if (oj && !cmp_str(oj, owner)) {
            rc = parse_i64(st, cell(&vr, vorder[j].row, 1), "roster version", &version);
            j++;
        }
        nitems = 0;
        while (rc == 0 && i < r.n && !cmp_str(cell(&r, order[i].row, 0), owner)) {
            rc = row_to_roster(st, &r, order[i].row, 1, &items[nitems]);
            if (rc == 0)
                nitems++;
            i++;
        }
        if (rc == 0)
            rc = cb(ctx, owner, version, items, nitems);
        for (size_t k = 0; k < nitems; k++)
            fg_roster_item_clear(&items[k]);
        nitems = 0;
    }
    fg_store_roster_items_free(items, nitems);
    fg_free(order);
    fg_free(vorder);
    rows_free(&r);
    rows_free(&vr);
    return rc;
}

/* ---- offline messages ----------------------------------------------------------------- */

void fg_store_offline_free(struct fg_offline_msg *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        fg_free(v[i].stanza);
    fg_free(v);
}

static int count_offline(struct fg_store *st, const char *recipient, int64_t *n)
{
    struct rows r;
    const char *const params[] = {recipient};
    int rc = select_rows(st, "SELECT COUNT(*) FROM offline WHERE recipient = ?", 1, params, &r);
    if (rc != 0)
        return rc;
    rc = r.n == 1 ? parse_i64(st, cell(&r, 0, 0), "offline count", n) : FG_EIO;
    rows_free(&r);
    return rc;
}

int fg_store_offline_add(struct fg_store *st, const char *recipient, int64_t stamp,
                         const char *stanza, size_t limit)
{
    char when[24];
    int64_t have = 0;
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    if (limit > 0) {
        rc = count_offline(st, recipient, &have);
        if (rc == 0 && have >= 0 && (uint64_t)have >= (uint64_t)limit) {
            set_err(st, "%s already has %zu offline messages", recipient, limit);
            rc = FG_ELIMIT;
        }
    }
    if (rc == 0) {
        fmt_i64(when, sizeof when, stamp);
        const char *const params[] = {recipient, when, stanza};
        rc = run(st, "INSERT INTO offline (recipient, stamp, stanza) VALUES (?, ?, ?)", 3, params,
                 NULL, NULL, NULL);
    }
    return write_end(st, rc, false);
}

static int cmp_offline(const void *a, const void *b)
{
    const struct fg_offline_msg *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int fg_store_offline_list(struct fg_store *st, const char *recipient, size_t max,
                          struct fg_offline_msg **out, size_t *n)
{
    struct rows r;
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *const params[] = {recipient, lim};
    int rc = select_rows(st,
                         max ? "SELECT id, stamp, stanza FROM offline WHERE recipient = ?"
                               " ORDER BY id LIMIT ?"
                             : "SELECT id, stamp, stanza FROM offline WHERE recipient = ?",
                         max ? 2 : 1, params, &r);
    if (rc != 0)
        return rc;
    struct fg_offline_msg *v = fg_calloc(r.n + 1, sizeof *v);
    size_t count = 0;
    for (; rc == 0 && count < r.n; count++) {
        rc = parse_i64(st, cell(&r, count, 0), "offline id", &v[count].id);
        if (rc == 0)
            rc = parse_i64(st, cell(&r, count, 1), "offline stamp", &v[count].stamp);
        v[count].stanza = fg_strdup(cell(&r, count, 2) ? cell(&r, count, 2) : "");
    }
    rows_free(&r);
    if (rc != 0) {
        fg_store_offline_free(v, count);
        return rc;
    }
    qsort(v, count, sizeof *v, cmp_offline);
    *out = v;
    *n = count;
    return 0;
}

int fg_store_offline_delete(struct fg_store *st, const char *recipient, int64_t up_to,
                            long *deleted)
{
    char id[24];
    long changes = 0;
    fmt_i64(id, sizeof id, up_to);
    const char *const params[] = {recipient, id};
    int rc = write_begin(st);
    if (rc != 0)
        return rc;
    rc = run(st, "DELETE FROM offline WHERE recipient = ? AND id <= ?", 2, params, NULL, NULL,
             &changes);
    if (rc == 0 && deleted)
        *deleted = changes;
    return write_end(st, rc, false);
}

int fg_store_offline_counts(struct fg_store *st, fg_store_offline_count_cb cb, void *ctx)
{
    struct rows r;
    int rc =
        select_rows(st, "SELECT recipient, COUNT(*) FROM offline GROUP BY recipient", 0, NULL, &r);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < r.n; i++) {
        int64_t n = 0;
        rc = parse_i64(st, cell(&r, i, 1), "offline count", &n);
        if (rc == 0)
            rc = cb(ctx, cell(&r, i, 0) ? cell(&r, i, 0) : "", n > 0 ? (size_t)n : 0);
    }
    rows_free(&r);
    return rc;
}
