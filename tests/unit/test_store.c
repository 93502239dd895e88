/* test_store.c - the store suite (store.h), run once against SQLite (files in a mkdtemp
 * directory) and once against PostgreSQL (FG_TEST_PG_URL: a database made for this run,
 * one schema per test). Every test starts from a fresh, migrated, empty store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "policy/policy.h"
#include "store/store.h"

/* One database server (or directory) for a whole group. */
struct backend {
    const char *name;     /* fg_store_driver_name */
    char base[1024];      /* sqlite: the temporary directory; postgresql: the run's database URL */
    char maint_url[1024]; /* postgresql: where the run's database is created and dropped */
    char dbname[64];
    PGconn *conn; /* postgresql: creates the per-test schemas */
    int seq;
};

/* One test's store. */
struct fx {
    struct backend *be;
    char url[2200];
    struct fg_store *st;
};

static struct backend sqlite_be = {.name = "sqlite"};
static struct backend pg_be = {.name = "postgresql"};
static bool pg_ready; /* the PostgreSQL group setup succeeded */

static bool is_pg(const struct fx *f)
{
    return f->be == &pg_be;
}

/* ---- fixtures ------------------------------------------------------------------------ */

static int pg_command(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "test_store: %s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    return ok ? 0 : -1;
}

/* url with its database name replaced by db (query parameters kept). */
static int url_with_db(const char *url, const char *db, char *out, size_t len)
{
    const char *host = strstr(url, "://");
    if (!host)
        return -1;
    host += 3;
    size_t hostlen = strcspn(host, "/?");
    const char *query = strchr(host + hostlen, '?');
    int n =
        snprintf(out, len, "%.*s/%s%s", (int)(host + hostlen - url), url, db, query ? query : "");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* A fresh store URL: a new file, or a new schema in the run's database. */
static int new_url(struct backend *be, char *out, size_t len)
{
    int n;
    be->seq++;
    if (be == &sqlite_be) {
        n = snprintf(out, len, "sqlite:%s/t%d.db", be->base, be->seq);
    } else {
        char sql[64];
        snprintf(sql, sizeof sql, "CREATE SCHEMA t%d", be->seq);
        if (pg_command(be->conn, sql) != 0)
            return -1;
        n = snprintf(out, len, "%s%soptions=-csearch_path%%3Dt%d", be->base,
                     strchr(be->base, '?') ? "&" : "?", be->seq);
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int sqlite_group_setup(void **state)
{
    char tmpl[] = "/tmp/fg-test-store-XXXXXX";
    (void)state;
    if (!mkdtemp(tmpl))
        return -1;
    snprintf(sqlite_be.base, sizeof sqlite_be.base, "%s", tmpl);
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int sqlite_group_teardown(void **state)
{
    (void)state;
    return nftw(sqlite_be.base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int pg_group_setup(void **state)
{
    const char *url = getenv("FG_TEST_PG_URL");
    char sql[128], run_url[1024];
    PGconn *c = NULL;
    (void)state;

    if (!url || !*url) {
        fprintf(stderr, "test_store: FG_TEST_PG_REQUIRED=1 but FG_TEST_PG_URL is not set "
                        "(scripts/pg-test start DIR prints one)\n");
        return -1;
    }
    snprintf(pg_be.maint_url, sizeof pg_be.maint_url, "%s", url);
    snprintf(pg_be.dbname, sizeof pg_be.dbname, "fg_test_%ld_%ld", (long)time(NULL),
             (long)getpid());
    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "test_store: cannot connect to %s: %s", url, PQerrorMessage(c));
        goto fail;
    }
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_be.dbname);
    if (pg_command(c, sql) != 0)
        goto fail;
    PQfinish(c);
    c = NULL;
    if (url_with_db(url, pg_be.dbname, run_url, sizeof run_url) != 0)
        goto fail;
    snprintf(pg_be.base, sizeof pg_be.base, "%s", run_url);
    pg_be.conn = PQconnectdb(run_url);
    if (PQstatus(pg_be.conn) != CONNECTION_OK) {
        fprintf(stderr, "test_store: cannot connect to %s: %s", run_url,
                PQerrorMessage(pg_be.conn));
        return -1;
    }
    pg_ready = true;
    return 0;
fail:
    PQfinish(c);
    return -1;
}

static int pg_group_teardown(void **state)
{
    char sql[128];
    (void)state;
    PQfinish(pg_be.conn);
    pg_be.conn = NULL;
    if (!pg_ready)
        return 0; /* the setup failed and already said why */
    PGconn *c = PQconnectdb(pg_be.maint_url);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_be.dbname);
    int rc = PQstatus(c) == CONNECTION_OK ? pg_command(c, sql) : -1;
    PQfinish(c);
    return rc;
}

static int setup(void **state)
{
    struct fx *f = fg_calloc(1, sizeof *f);
    char err[512];
    f->be = *state;
    if (new_url(f->be, f->url, sizeof f->url) != 0)
        goto fail;
    if (fg_store_open(f->url, NULL, &f->st, err, sizeof err) != 0) {
        fprintf(stderr, "test_store: %s\n", err);
        goto fail;
    }
    *state = f;
    return 0;
fail:
    fg_free(f);
    return -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fg_store_close(f->st);
    fg_free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

#define OK(call) assert_int_equal((call), 0)

static void reopen(struct fx *f)
{
    char err[512];
    fg_store_close(f->st);
    f->st = NULL;
    int rc = fg_store_open(f->url, NULL, &f->st, err, sizeof err);
    if (rc != 0)
        fail_msg("reopen: %s", err);
}

static int64_t revision(struct fx *f)
{
    int64_t rev = -1;
    OK(fg_store_revision(f->st, &rev));
    return rev;
}

static void make_partner(struct fg_partner *p, const char *domain, const char *const *extra)
{
    fg_partner_init(p, domain);
    for (size_t i = 0; extra && extra[i]; i++)
        fg_strv_push(&p->additional, extra[i]);
}

static void assert_partner_eq(const struct fg_partner *a, const struct fg_partner *b)
{
    assert_string_equal(a->domain, b->domain);
    assert_string_equal(a->description, b->description);
    assert_int_equal(fg_strv_len(a->additional), fg_strv_len(b->additional));
    for (size_t i = 0; a->additional[i]; i++)
        assert_string_equal(a->additional[i], b->additional[i]);
    assert_int_equal(a->subdomains, b->subdomains);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->tls, b->tls);
    assert_int_equal(a->sasl, b->sasl);
    assert_int_equal(a->dialback, b->dialback);
    assert_int_equal(a->keepalive, b->keepalive);
    assert_int_equal(a->connection_limit, b->connection_limit);
    assert_string_equal(a->proxy_fqdn, b->proxy_fqdn);
    assert_true(fg_partner_equal(a, b));
}

static void insert_partner(struct fx *f, const char *domain, const char *const *extra)
{
    struct fg_partner p;
    make_partner(&p, domain, extra);
    OK(fg_store_begin(f->st));
    OK(fg_store_partner_insert(f->st, &p));
    OK(fg_store_commit(f->st));
    fg_partner_clear(&p);
}

static void assert_gateway_eq(const struct fg_gateway *a, const struct fg_gateway *b)
{
    assert_int_equal(a->connection_limit, b->connection_limit);
    assert_int_equal(a->partner_connection_limit, b->partner_connection_limit);
    assert_int_equal(a->keepalive_interval, b->keepalive_interval);
    assert_int_equal(a->stream_establishment_timeout, b->stream_establishment_timeout);
    assert_int_equal(a->stream_inactivity_timeout, b->stream_inactivity_timeout);
    assert_int_equal(a->subscription_refresh_interval, b->subscription_refresh_interval);
    assert_int_equal(a->log_message_bodies, b->log_message_bodies);
    assert_string_equal(a->unlisted_domains, b->unlisted_domains);
}

static void make_user(struct fg_user *u, const char *jid, const char *tag)
{
    memset(u, 0, sizeof *u);
    snprintf(u->jid, sizeof u->jid, "%s", jid);
    snprintf(u->sha256.salt, sizeof u->sha256.salt, "salt256-%s", tag);
    u->sha256.iterations = 4096;
    snprintf(u->sha256.stored_key, sizeof u->sha256.stored_key, "stored256-%s", tag);
    snprintf(u->sha256.server_key, sizeof u->sha256.server_key, "server256-%s", tag);
    snprintf(u->sha1.salt, sizeof u->sha1.salt, "salt1-%s", tag);
    u->sha1.iterations = 10000;
    snprintf(u->sha1.stored_key, sizeof u->sha1.stored_key, "stored1-%s+/=", tag);
    snprintf(u->sha1.server_key, sizeof u->sha1.server_key, "server1-%s", tag);
}

static void assert_cred_eq(const struct fg_scram_cred *a, const struct fg_scram_cred *b)
{
    assert_string_equal(a->salt, b->salt);
    assert_int_equal(a->iterations, b->iterations);
    assert_string_equal(a->stored_key, b->stored_key);
    assert_string_equal(a->server_key, b->server_key);
}

static void make_admin(struct fg_admin *a, const char *name, enum fg_role role)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->role = role;
    snprintf(a->hash, sizeof a->hash, "$argon2id$v=19$m=65536,t=3,p=1$%s", name);
}

static void make_token(struct fg_token *t, const char *id, const char *admin, int64_t created,
                       int64_t expires)
{
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->admin, sizeof t->admin, "%s", admin);
    t->role = FG_ROLE_ADMINISTRATOR;
    snprintf(t->hash, sizeof t->hash, "%064d", (int)created);
    t->created = created;
    t->expires = expires;
}

/* ---- tests ------------------------------------------------------------------------- */

static void t_open_reopen(void **state)
{
    struct fx *f = *state;
    int v1 = 0, v2 = 0;

    assert_string_equal(fg_store_driver_name(f->st), f->be->name);
    OK(fg_store_schema_version(f->st, &v1));
    assert_true(v1 >= 1);
    assert_int_equal(revision(f), 0);
    insert_partner(f, "fab.test", NULL);

    /* Reopening finds the schema current and migrates nothing (a second migration 1 would
     * fail on CREATE TABLE), and the data is still there. */
    reopen(f);
    OK(fg_store_schema_version(f->st, &v2));
    assert_int_equal(v1, v2);
    assert_int_equal(revision(f), 1);
    struct fg_partner p;
    OK(fg_store_partner_get(f->st, "fab.test", &p));
    fg_partner_clear(&p);
    reopen(f);
    OK(fg_store_schema_version(f->st, &v2));
    assert_int_equal(v1, v2);
}

static void t_partner_roundtrip(void **state)
{
    struct fx *f = *state;
    static const char *const extra[] = {"zeta.fab.test", "alpha.test", "m.test", NULL};
    struct fg_partner p, got, dflt, got2;

    make_partner(&p, "fab.test", extra);
    fg_free(p.description);
    p.description = fg_strdup("Fabrikam — \"it's\" ; DROP TABLE partners; ? $1");
    p.subdomains = true;
    p.type = FG_PT_FEDERATED;
    p.tls = FG_NEG_OPTIONAL;
    p.sasl = FG_NEG_REQUIRED;
    p.dialback = false;
    p.keepalive = false;
    p.connection_limit = 65535;
    fg_free(p.proxy_fqdn);
    p.proxy_fqdn = fg_strdup("proxy.fab.test:5270");
    make_partner(&dflt, "xn--bcher-kva.test", NULL);

    OK(fg_store_begin(f->st));
    OK(fg_store_partner_insert(f->st, &p));
    OK(fg_store_partner_insert(f->st, &dflt));
    /* Reads inside the transaction see its writes. */
    OK(fg_store_partner_get(f->st, "fab.test", &got));
    assert_partner_eq(&p, &got);
    fg_partner_clear(&got);
    OK(fg_store_commit(f->st));

    OK(fg_store_partner_get(f->st, "fab.test", &got));
    assert_partner_eq(&p, &got);
    OK(fg_store_partner_get(f->st, "xn--bcher-kva.test", &got2));
    assert_partner_eq(&dflt, &got2);
    assert_int_equal(got2.connection_limit, 0);
    assert_non_null(got2.additional);
    assert_null(got2.additional[0]);

    /* By primary domain only. */
    struct fg_partner none = {0};
    assert_int_equal(fg_store_partner_get(f->st, "alpha.test", &none), FG_ENOTFOUND);
    assert_null(none.domain);
    assert_int_equal(fg_store_partner_get(f->st, "nowhere.test", &none), FG_ENOTFOUND);
    assert_non_null(strstr(fg_store_error(f->st), "nowhere.test"));

    fg_partner_clear(&got);
    fg_partner_clear(&got2);
    fg_partner_clear(&p);
    fg_partner_clear(&dflt);
}

static void t_partner_duplicates(void **state)
{
    struct fx *f = *state;
    static const char *const fab_extra[] = {"taken.test", NULL};
    static const char *const bad_extra[] = {"free.test", "taken.test", NULL};
    struct fg_partner dup, bad, ok;
    struct fg_partner *list = NULL;
    size_t n = 0;

    insert_partner(f, "fab.test", fab_extra);
    make_partner(&dup, "fab.test", NULL);
    make_partner(&bad, "other.test", bad_extra);
    make_partner(&ok, "ok.test", NULL);

    OK(fg_store_begin(f->st));
    assert_int_equal(fg_store_partner_insert(f->st, &dup), FG_EEXISTS);
    assert_non_null(strstr(fg_store_error(f->st), "fab.test"));
    assert_int_equal(fg_store_partner_insert(f->st, &bad), FG_EEXISTS);
    assert_non_null(strstr(fg_store_error(f->st), "taken.test"));
    /* A failed write undoes itself and leaves the transaction usable. */
    OK(fg_store_partner_insert(f->st, &ok));
    OK(fg_store_commit(f->st));

    OK(fg_store_partner_list(f->st, &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].domain, "fab.test");
    assert_string_equal(list[1].domain, "ok.test");
    fg_store_partners_free(list, n);
    char owner[FG_DOMAIN_MAX + 1];
    assert_int_equal(fg_store_partner_owner(f->st, "free.test", owner, sizeof owner), FG_ENOTFOUND);
    OK(fg_store_partner_owner(f->st, "taken.test", owner, sizeof owner));
    assert_string_equal(owner, "fab.test");

    fg_partner_clear(&dup);
    fg_partner_clear(&bad);
    fg_partner_clear(&ok);
}

static void t_partner_update_delete(void **state)
{
    struct fx *f = *state;
    static const char *const extra[] = {"a.test", "b.test", "c.test", NULL};
    struct fg_partner p, got, ghost;
    char owner[FG_DOMAIN_MAX + 1];

    insert_partner(f, "fab.test", extra);
    insert_partner(f, "other.test", (const char *const[]){"o.test", NULL});
    make_partner(&p, "fab.test", (const char *const[]){"c.test", "new.test", "a.test", NULL});
    p.connection_limit = 7;
    p.tls = FG_NEG_NOT_SUPPORTED;
    p.sasl = FG_NEG_NOT_SUPPORTED;
    fg_free(p.description);
    p.description = fg_strdup("changed");

    OK(fg_store_begin(f->st));
    OK(fg_store_partner_update(f->st, &p));
    OK(fg_store_commit(f->st));
    OK(fg_store_partner_get(f->st, "fab.test", &got));
    assert_partner_eq(&p, &got);
    fg_partner_clear(&got);
    assert_int_equal(fg_store_partner_owner(f->st, "b.test", owner, sizeof owner), FG_ENOTFOUND);
    OK(fg_store_partner_owner(f->st, "o.test", owner, sizeof owner));
    assert_string_equal(owner, "other.test");

    /* Back to the default limit: 0 round-trips through NULL. */
    p.connection_limit = 0;
    OK(fg_store_begin(f->st));
    OK(fg_store_partner_update(f->st, &p));
    OK(fg_store_commit(f->st));
    OK(fg_store_partner_get(f->st, "fab.test", &got));
    assert_int_equal(got.connection_limit, 0);
    fg_partner_clear(&got);

    /* An update may not take another partner's additional domain. */
    make_partner(&ghost, "fab.test", (const char *const[]){"o.test", NULL});
    OK(fg_store_begin(f->st));
    assert_int_equal(fg_store_partner_update(f->st, &ghost), FG_EEXISTS);
    OK(fg_store_commit(f->st));
    OK(fg_store_partner_get(f->st, "fab.test", &got));
    assert_partner_eq(&p, &got); /* unchanged: the failed update undid itself */
    fg_partner_clear(&got);
    fg_partner_clear(&ghost);

    make_partner(&ghost, "ghost.test", NULL);
    OK(fg_store_begin(f->st));
    assert_int_equal(fg_store_partner_update(f->st, &ghost), FG_ENOTFOUND);
    assert_int_equal(fg_store_partner_delete(f->st, "ghost.test"), FG_ENOTFOUND);
    /* Additional domains are not primaries. */
    assert_int_equal(fg_store_partner_delete(f->st, "new.test"), FG_ENOTFOUND);
    OK(fg_store_partner_delete(f->st, "fab.test"));
    assert_int_equal(fg_store_partner_delete(f->st, "fab.test"), FG_ENOTFOUND);
    OK(fg_store_commit(f->st));
    fg_partner_clear(&ghost);

    assert_int_equal(fg_store_partner_get(f->st, "fab.test", &got), FG_ENOTFOUND);
    assert_int_equal(fg_store_partner_owner(f->st, "new.test", owner, sizeof owner), FG_ENOTFOUND);
    /* Its domains are free again. */
    insert_partner(f, "new.test", (const char *const[]){"a.test", "c.test", NULL});
    OK(fg_store_partner_owner(f->st, "c.test", owner, sizeof owner));
    assert_string_equal(owner, "new.test");
    fg_partner_clear(&p);
}

static void t_partner_list_owner(void **state)
{
    struct fx *f = *state;
    struct fg_partner *list = NULL;
    size_t n = 99;
    char owner[FG_DOMAIN_MAX + 1], tiny[4];

    OK(fg_store_partner_list(f->st, &list, &n));
    assert_int_equal(n, 0);
    fg_store_partners_free(list, n);

    /* Byte order, whatever the database's collation: "-" < "." < letters. */
    insert_partner(f, "bx.test", (const char *const[]){"q.test", "p.test", NULL});
    insert_partner(f, "b-x.test", NULL);
    insert_partner(f, "zz.test", (const char *const[]){"z1.test", NULL});
    insert_partner(f, "b.test", NULL);
    insert_partner(f, "a.test", (const char *const[]){"conference.a.test", NULL});

    OK(fg_store_partner_list(f->st, &list, &n));
    assert_int_equal(n, 5);
    static const char *const order[] = {"a.test", "b-x.test", "b.test", "bx.test", "zz.test"};
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].domain, order[i]);
    assert_int_equal(fg_strv_len(list[0].additional), 1);
    assert_string_equal(list[0].additional[0], "conference.a.test");
    assert_int_equal(fg_strv_len(list[1].additional), 0);
    assert_int_equal(fg_strv_len(list[3].additional), 2);
    assert_string_equal(list[3].additional[0], "q.test");
    assert_string_equal(list[3].additional[1], "p.test");
    assert_string_equal(list[4].additional[0], "z1.test");
    fg_store_partners_free(list, n);

    OK(fg_store_partner_owner(f->st, "bx.test", owner, sizeof owner));
    assert_string_equal(owner, "bx.test");
    OK(fg_store_partner_owner(f->st, "p.test", owner, sizeof owner));
    assert_string_equal(owner, "bx.test");
    OK(fg_store_partner_owner(f->st, "conference.a.test", owner, sizeof owner));
    assert_string_equal(owner, "a.test");
    assert_int_equal(fg_store_partner_owner(f->st, "x.test", owner, sizeof owner), FG_ENOTFOUND);
    assert_int_equal(fg_store_partner_owner(f->st, "zz.test", tiny, sizeof tiny), FG_ELIMIT);
}

static void t_gateway(void **state)
{
    struct fx *f = *state;
    struct fg_gateway g, d, got;
    char err[256];

    fg_gateway_defaults(&d);
    OK(fg_store_gateway_get(f->st, &g));
    assert_gateway_eq(&g, &d);

    OK(fg_gateway_set_text(&g, "keepalive_interval", "120", err, sizeof err));
    OK(fg_gateway_set_text(&g, "log_message_bodies", "true", err, sizeof err));
    OK(fg_gateway_set_text(&g, "unlisted_domains", "public-verified", err, sizeof err));
    OK(fg_gateway_set_text(&g, "connection_limit", "1000000", err, sizeof err));
    OK(fg_store_begin(f->st));
    OK(fg_store_gateway_put(f->st, &g));
    OK(fg_store_commit(f->st));
    OK(fg_store_gateway_get(f->st, &got));
    assert_gateway_eq(&got, &g);
    assert_int_equal(got.keepalive_interval, 120);
    assert_true(got.log_message_bodies);
    assert_int_equal(revision(f), 1);

    /* Putting the defaults back reads back as defaults. */
    OK(fg_store_begin(f->st));
    OK(fg_store_gateway_put(f->st, &d));
    OK(fg_store_commit(f->st));
    OK(fg_store_gateway_get(f->st, &got));
    assert_gateway_eq(&got, &d);
}

static void t_dialback_secret(void **state)
{
    struct fx *f = *state;
    char out[129], tiny[8];
    const char *s1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const char *s2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    assert_int_equal(fg_store_dialback_secret_get(f->st, out, sizeof out), FG_ENOTFOUND);
    OK(fg_store_begin(f->st));
    OK(fg_store_dialback_secret_set(f->st, s1));
    OK(fg_store_commit(f->st));
    OK(fg_store_dialback_secret_get(f->st, out, sizeof out));
    assert_string_equal(out, s1);
    assert_int_equal(fg_store_dialback_secret_get(f->st, tiny, sizeof tiny), FG_ELIMIT);

    OK(fg_store_begin(f->st));
    OK(fg_store_dialback_secret_set(f->st, s2));
    OK(fg_store_commit(f->st));
    OK(fg_store_dialback_secret_get(f->st, out, sizeof out));
    assert_string_equal(out, s2);
    assert_int_equal(revision(f), 2);
}

static void t_users(void **state)
{
    struct fx *f = *state;
    struct fg_user u1, u2, got, u1b;
    char **jids = NULL;

    make_user(&u1, "zoe@home.test", "z");
    make_user(&u2, "adam@home.test", "a");
    OK(fg_store_begin(f->st));
    OK(fg_store_user_add(f->st, &u1));
    OK(fg_store_user_add(f->st, &u2));
    assert_int_equal(fg_store_user_add(f->st, &u1), FG_EEXISTS);
    assert_non_null(strstr(fg_store_error(f->st), "zoe@home.test"));
    OK(fg_store_commit(f->st));

    memset(&got, 0, sizeof got);
    OK(fg_store_user_get(f->st, "zoe@home.test", &got));
    assert_string_equal(got.jid, u1.jid);
    assert_cred_eq(&got.sha256, &u1.sha256);
    assert_cred_eq(&got.sha1, &u1.sha1);

    make_user(&u1b, "zoe@home.test", "new");
    u1b.sha256.iterations = 8192;
    OK(fg_store_begin(f->st));
    OK(fg_store_user_set_creds(f->st, &u1b));
    struct fg_user ghost;
    make_user(&ghost, "ghost@home.test", "g");
    assert_int_equal(fg_store_user_set_creds(f->st, &ghost), FG_ENOTFOUND);
    OK(fg_store_commit(f->st));
    OK(fg_store_user_get(f->st, "zoe@home.test", &got));
    assert_cred_eq(&got.sha256, &u1b.sha256);
    assert_cred_eq(&got.sha1, &u1b.sha1);
    assert_int_equal(fg_store_user_get(f->st, "ghost@home.test", &got), FG_ENOTFOUND);

    OK(fg_store_user_list(f->st, &jids));
    assert_int_equal(fg_strv_len(jids), 2);
    assert_string_equal(jids[0], "adam@home.test");
    assert_string_equal(jids[1], "zoe@home.test");
    fg_strv_free(jids);

    OK(fg_store_begin(f->st));
    OK(fg_store_user_delete(f->st, "adam@home.test"));
    assert_int_equal(fg_store_user_delete(f->st, "adam@home.test"), FG_ENOTFOUND);
    OK(fg_store_commit(f->st));
    assert_int_equal(fg_store_user_get(f->st, "adam@home.test", &got), FG_ENOTFOUND);
    OK(fg_store_user_list(f->st, &jids));
    assert_int_equal(fg_strv_len(jids), 1);
    fg_strv_free(jids);
}

static void t_admins(void **state)
{
    struct fx *f = *state;
    struct fg_admin a, got, *list = NULL;
    size_t n = 0;
    int count = -1;

    OK(fg_store_begin(f->st));
    make_admin(&a, "zed", FG_ROLE_SERVER_ADMIN);
    OK(fg_store_admin_add(f->st, &a));
    make_admin(&a, "boss", FG_ROLE_SERVER_ADMIN);
    OK(fg_store_admin_add(f->st, &a));
    make_admin(&a, "ann", FG_ROLE_ADMINISTRATOR);
    OK(fg_store_admin_add(f->st, &a));
    make_admin(&a, "vic", FG_ROLE_VIEWER);
    OK(fg_store_admin_add(f->st, &a));
    assert_int_equal(fg_store_admin_add(f->st, &a), FG_EEXISTS);
    OK(fg_store_commit(f->st));

    OK(fg_store_admin_get(f->st, "ann", &got));
    assert_string_equal(got.name, "ann");
    assert_int_equal(got.role, FG_ROLE_ADMINISTRATOR);
    assert_string_equal(got.hash, "$argon2id$v=19$m=65536,t=3,p=1$ann");
    assert_int_equal(fg_store_admin_get(f->st, "nobody", &got), FG_ENOTFOUND);

    OK(fg_store_admin_count_role(f->st, FG_ROLE_SERVER_ADMIN, &count));
    assert_int_equal(count, 2);

    make_admin(&a, "zed", FG_ROLE_VIEWER);
    snprintf(a.hash, sizeof a.hash, "$argon2id$v=19$m=65536,t=3,p=1$changed");
    OK(fg_store_begin(f->st));
    OK(fg_store_admin_update(f->st, &a));
    make_admin(&a, "nobody", FG_ROLE_VIEWER);
    assert_int_equal(fg_store_admin_update(f->st, &a), FG_ENOTFOUND);
    OK(fg_store_commit(f->st));
    OK(fg_store_admin_get(f->st, "zed", &got));
    assert_int_equal(got.role, FG_ROLE_VIEWER);
    assert_string_equal(got.hash, "$argon2id$v=19$m=65536,t=3,p=1$changed");
    OK(fg_store_admin_count_role(f->st, FG_ROLE_SERVER_ADMIN, &count));
    assert_int_equal(count, 1);
    OK(fg_store_admin_count_role(f->st, FG_ROLE_VIEWER, &count));
    assert_int_equal(count, 2);

    OK(fg_store_admin_list(f->st, &list, &n));
    assert_int_equal(n, 4);
    assert_string_equal(list[0].name, "ann");
    assert_string_equal(list[1].name, "boss");
    assert_string_equal(list[2].name, "vic");
    assert_string_equal(list[3].name, "zed");
    assert_int_equal(list[1].role, FG_ROLE_SERVER_ADMIN);
    fg_free(list);

    OK(fg_store_begin(f->st));
    OK(fg_store_admin_delete(f->st, "vic"));
    assert_int_equal(fg_store_admin_delete(f->st, "vic"), FG_ENOTFOUND);
    OK(fg_store_commit(f->st));
    OK(fg_store_admin_list(f->st, &list, &n));
    assert_int_equal(n, 3);
    fg_free(list);
}

static void t_tokens(void **state)
{
    struct fx *f = *state;
    struct fg_admin a;
    struct fg_token t, got, *list = NULL;
    size_t n = 0;

    OK(fg_store_begin(f->st));
    make_admin(&a, "boss", FG_ROLE_SERVER_ADMIN);
    OK(fg_store_admin_add(f->st, &a));
    make_admin(&a, "ann", FG_ROLE_ADMINISTRATOR);
    OK(fg_store_admin_add(f->st, &a));
    make_token(&t, "tok-b", "boss", 200, 0);
    OK(fg_store_token_add(f->st, &t));
    make_token(&t, "tok-a", "boss", 100, 1999999999);
    t.role = FG_ROLE_VIEWER;
    OK(fg_store_token_add(f->st, &t));
    make_token(&t, "tok-c", "ann", 300, 0);
    OK(fg_store_token_add(f->st, &t));
    make_token(&t, "tok-x", "nobody", 400, 0);
    assert_int_equal(fg_store_token_add(f->st, &t), FG_ENOTFOUND);
    make_token(&t, "tok-d", "boss", 100, 0); /* same hash as tok-a */
    assert_int_equal(fg_store_token_add(f->st, &t), FG_EEXISTS);
    make_token(&t, "tok-a", "boss", 500, 0); /* same id */
    assert_int_equal(fg_store_token_add(f->st, &t), FG_EEXISTS);
    OK(fg_store_commit(f->st));

    make_token(&t, "tok-a", "boss", 100, 1999999999);
    OK(fg_store_token_by_hash(f->st, t.hash, &got));
    assert_string_equal(got.id, "tok-a");
    assert_string_equal(got.admin, "boss");
    assert_int_equal(got.role, FG_ROLE_VIEWER);
    assert_string_equal(got.hash, t.hash);
    assert_int_equal(got.created, 100);
    assert_int_equal(got.expires, 1999999999);
    make_token(&t, "tok-b", "boss", 200, 0);
    OK(fg_store_token_by_hash(f->st, t.hash, &got));
    assert_int_equal(got.expires, 0);
    assert_int_equal(fg_store_token_by_hash(f->st, "00ff", &got), FG_ENOTFOUND);

    OK(fg_store_token_list(f->st, &list, &n));
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, "tok-a");
    assert_string_equal(list[1].id, "tok-b");
    assert_string_equal(list[2].id, "tok-c");
    fg_free(list);

    OK(fg_store_begin(f->st));
    OK(fg_store_token_delete(f->st, "tok-b"));
    assert_int_equal(fg_store_token_delete(f->st, "tok-b"), FG_ENOTFOUND);
    /* An administrator's tokens go with it. */
    OK(fg_store_admin_delete(f->st, "boss"));
    OK(fg_store_commit(f->st));
    OK(fg_store_token_list(f->st, &list, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "tok-c");
    fg_free(list);
}

static void add_audit(struct fx *f, int64_t when, const char *action, const char *before,
                      const char *after)
{
    struct fg_audit a = {
        .time = when,
        .actor = "cli:root",
        .address = "local",
        .action = (char *)action,
        .object = "partner:fab.test",
        .before = (char *)before,
        .after = (char *)after,
    };
    OK(fg_store_begin(f->st));
    OK(fg_store_audit_add(f->st, &a));
    OK(fg_store_commit(f->st));
}

static void t_audit(void **state)
{
    struct fx *f = *state;
    struct fg_audit *v = NULL;
    size_t n = 99;

    OK(fg_store_audit_list(f->st, 0, 0, &v, &n));
    assert_int_equal(n, 0);
    fg_store_audits_free(v, n);

    add_audit(f, 100, "partner.create", NULL, "{\"domain\": \"fab.test\"}");
    add_audit(f, 300, "partner.update", "{\"a\": 1}", "{\"a\": 2}");
    add_audit(f, 200, "partner.update", "{\"a\": 2}", "{\"a\": \"é ' ?\"}");
    add_audit(f, 400, "partner.delete", "{\"a\": 3}", NULL);

    OK(fg_store_audit_list(f->st, 0, 0, &v, &n));
    assert_int_equal(n, 4);
    /* Newest first means by insertion (id), not by the time field. */
    assert_string_equal(v[0].action, "partner.delete");
    assert_int_equal(v[0].time, 400);
    assert_null(v[0].after);
    assert_string_equal(v[0].before, "{\"a\": 3}");
    assert_int_equal(v[1].time, 200);
    assert_string_equal(v[1].after, "{\"a\": \"é ' ?\"}");
    assert_int_equal(v[2].time, 300);
    assert_int_equal(v[3].time, 100);
    assert_null(v[3].before);
    assert_string_equal(v[3].actor, "cli:root");
    assert_string_equal(v[3].address, "local");
    assert_string_equal(v[3].object, "partner:fab.test");
    for (size_t i = 1; i < n; i++)
        assert_true(v[i - 1].id > v[i].id);
    fg_store_audits_free(v, n);

    OK(fg_store_audit_list(f->st, 200, 0, &v, &n));
    assert_int_equal(n, 3); /* since is inclusive */
    assert_int_equal(v[0].time, 400);
    assert_int_equal(v[1].time, 200);
    assert_int_equal(v[2].time, 300);
    fg_store_audits_free(v, n);

    OK(fg_store_audit_list(f->st, 0, 2, &v, &n));
    assert_int_equal(n, 2);
    assert_int_equal(v[0].time, 400);
    assert_int_equal(v[1].time, 200);
    fg_store_audits_free(v, n);

    OK(fg_store_audit_list(f->st, 250, 1, &v, &n));
    assert_int_equal(n, 1);
    assert_int_equal(v[0].time, 400);
    fg_store_audits_free(v, n);

    OK(fg_store_audit_list(f->st, 401, 0, &v, &n));
    assert_int_equal(n, 0);
    fg_store_audits_free(v, n);

    /* time 0 is stamped with the current time. */
    int64_t before = fg_time_now();
    add_audit(f, 0, "gateway.update", NULL, NULL);
    OK(fg_store_audit_list(f->st, 0, 1, &v, &n));
    assert_int_equal(n, 1);
    assert_true(v[0].time >= before && v[0].time <= fg_time_now());
    fg_store_audits_free(v, n);
}

static void t_revision(void **state)
{
    struct fx *f = *state;
    struct fg_partner p;
    struct fg_gateway g;
    struct fg_user u;

    assert_int_equal(revision(f), 0);
    /* Nothing written: no bump. */
    OK(fg_store_begin(f->st));
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 0);

    /* Several writes in one transaction: one bump. */
    make_partner(&p, "fab.test", NULL);
    fg_gateway_defaults(&g);
    OK(fg_store_begin(f->st));
    OK(fg_store_partner_insert(f->st, &p));
    OK(fg_store_gateway_put(f->st, &g));
    assert_int_equal(revision(f), 0); /* bumped at commit */
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 1);

    /* Rolled back: no bump. */
    make_user(&u, "a@home.test", "a");
    OK(fg_store_begin(f->st));
    OK(fg_store_user_add(f->st, &u));
    fg_store_rollback(f->st);
    assert_int_equal(revision(f), 1);

    /* A write that failed wrote nothing: no bump. */
    OK(fg_store_begin(f->st));
    assert_int_equal(fg_store_partner_insert(f->st, &p), FG_EEXISTS);
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 1);

    /* Metadata never bumps, inside a transaction or not. */
    OK(fg_store_meta_set(f->st, "heartbeat", "1"));
    OK(fg_store_begin(f->st));
    OK(fg_store_meta_set(f->st, "heartbeat", "2"));
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 1);

    OK(fg_store_begin(f->st));
    OK(fg_store_user_add(f->st, &u));
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 2);
    OK(fg_store_begin(f->st));
    OK(fg_store_partner_delete(f->st, "fab.test"));
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 3);
    fg_partner_clear(&p);
}

static void t_rollback(void **state)
{
    struct fx *f = *state;
    struct fg_partner p, got;
    struct fg_gateway g, d;
    struct fg_user u;
    struct fg_admin a;
    struct fg_token t;
    struct fg_audit au = {.actor = "cli:root", .address = "", .action = "x", .object = "y"};
    char secret[129], owner[FG_DOMAIN_MAX + 1], *meta = NULL;
    struct fg_audit *v = NULL;
    size_t n = 0;
    char **jids = NULL;

    make_partner(&p, "fab.test", (const char *const[]){"x.test", NULL});
    fg_gateway_defaults(&d);
    g = d;
    g.keepalive_interval = 99;
    make_user(&u, "a@home.test", "a");
    make_admin(&a, "boss", FG_ROLE_SERVER_ADMIN);
    make_token(&t, "tok", "boss", 1, 0);

    OK(fg_store_begin(f->st));
    OK(fg_store_partner_insert(f->st, &p));
    OK(fg_store_gateway_put(f->st, &g));
    OK(fg_store_dialback_secret_set(f->st, "abcd"));
    OK(fg_store_user_add(f->st, &u));
    OK(fg_store_admin_add(f->st, &a));
    OK(fg_store_token_add(f->st, &t));
    OK(fg_store_audit_add(f->st, &au));
    OK(fg_store_meta_set(f->st, "k", "v"));
    fg_store_rollback(f->st);
    fg_store_rollback(f->st); /* harmless when nothing is open */

    assert_int_equal(fg_store_partner_get(f->st, "fab.test", &got), FG_ENOTFOUND);
    assert_int_equal(fg_store_partner_owner(f->st, "x.test", owner, sizeof owner), FG_ENOTFOUND);
    OK(fg_store_gateway_get(f->st, &g));
    assert_gateway_eq(&g, &d);
    assert_int_equal(fg_store_dialback_secret_get(f->st, secret, sizeof secret), FG_ENOTFOUND);
    OK(fg_store_user_list(f->st, &jids));
    assert_null(jids[0]);
    fg_strv_free(jids);
    assert_int_equal(fg_store_admin_get(f->st, "boss", &a), FG_ENOTFOUND);
    assert_int_equal(fg_store_token_by_hash(f->st, t.hash, &t), FG_ENOTFOUND);
    OK(fg_store_audit_list(f->st, 0, 0, &v, &n));
    assert_int_equal(n, 0);
    fg_store_audits_free(v, n);
    assert_int_equal(fg_store_meta_get(f->st, "k", &meta), FG_ENOTFOUND);
    assert_int_equal(revision(f), 0);

    /* The handle is usable afterwards. */
    OK(fg_store_begin(f->st));
    OK(fg_store_partner_insert(f->st, &p));
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), 1);
    fg_partner_clear(&p);
}

static void t_transaction_misuse(void **state)
{
    struct fx *f = *state;
    struct fg_partner p;

    make_partner(&p, "fab.test", NULL);
    assert_int_equal(fg_store_partner_insert(f->st, &p), FG_EIO);
    assert_non_null(strstr(fg_store_error(f->st), "outside"));
    assert_int_equal(fg_store_commit(f->st), FG_EIO);
    OK(fg_store_begin(f->st));
    assert_int_equal(fg_store_begin(f->st), FG_EIO);
    OK(fg_store_partner_insert(f->st, &p));
    OK(fg_store_commit(f->st));
    fg_partner_clear(&p);
    /* Closing with a transaction open rolls it back. */
    OK(fg_store_begin(f->st));
    OK(fg_store_partner_delete(f->st, "fab.test"));
    reopen(f);
    OK(fg_store_partner_get(f->st, "fab.test", &p));
    fg_partner_clear(&p);
}

static void t_meta(void **state)
{
    struct fx *f = *state;
    char *v = NULL;

    assert_int_equal(fg_store_meta_get(f->st, "heartbeat", &v), FG_ENOTFOUND);
    OK(fg_store_meta_set(f->st, "heartbeat", "2026-11-26T12:00:00Z"));
    OK(fg_store_meta_get(f->st, "heartbeat", &v));
    assert_string_equal(v, "2026-11-26T12:00:00Z");
    fg_free(v);
    OK(fg_store_meta_set(f->st, "heartbeat", "{\"json\": [1, 2]}"));
    OK(fg_store_meta_get(f->st, "heartbeat", &v));
    assert_string_equal(v, "{\"json\": [1, 2]}");
    fg_free(v);
    OK(fg_store_meta_set(f->st, "heartbeat", NULL));
    assert_int_equal(fg_store_meta_get(f->st, "heartbeat", &v), FG_ENOTFOUND);
}

/* A child's body: 0 on success. It uses only its own store handle and leaves with
 * _exit, so nothing of the parent (cmocka, inherited connections) runs twice. */
static int increment_loop(const char *url, int rounds)
{
    struct fg_store *st = NULL;
    char err[512];
    if (fg_store_open(url, NULL, &st, err, sizeof err) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    for (int i = 0; i < rounds; i++) {
        struct fg_gateway g;
        if (fg_store_begin(st) != 0 || fg_store_gateway_get(st, &g) != 0)
            goto fail;
        g.connection_limit++;
        if (fg_store_gateway_put(st, &g) != 0 || fg_store_commit(st) != 0)
            goto fail;
    }
    fg_store_close(st);
    return 0;
fail:
    fprintf(stderr, "child: %s\n", fg_store_error(st));
    fg_store_close(st);
    return 1;
}

static void wait_children(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

static void t_concurrent_writers(void **state)
{
    struct fx *f = *state;
    enum { CHILDREN = 2, ROUNDS = 50 };
    struct fg_gateway g;
    pid_t pids[CHILDREN];

    fg_gateway_defaults(&g);
    g.connection_limit = 1;
    OK(fg_store_begin(f->st));
    OK(fg_store_gateway_put(f->st, &g));
    OK(fg_store_commit(f->st));
    /* No connection may cross fork(): the parent's is closed, each child opens its own. */
    fg_store_close(f->st);
    f->st = NULL;
    fflush(NULL);
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(increment_loop(f->url, ROUNDS));
    }
    wait_children(pids, CHILDREN);
    reopen(f);
    OK(fg_store_gateway_get(f->st, &g));
    assert_int_equal(g.connection_limit, 1 + CHILDREN * ROUNDS);
    assert_int_equal(revision(f), 1 + CHILDREN * ROUNDS);
}

/* Several processes open the same fresh store at once: exactly one migrates (a second
 * migration would fail on CREATE TABLE), all of them succeed. */
static void t_concurrent_open(void **state)
{
    struct fx *f = *state;
    enum { CHILDREN = 4, ROUNDS = 3 };
    int latest = 0;

    OK(fg_store_schema_version(f->st, &latest));
    for (int round = 0; round < ROUNDS; round++) {
        char url[sizeof f->url];
        pid_t pids[CHILDREN];
        int gate[2];

        assert_int_equal(new_url(f->be, url, sizeof url), 0);
        assert_int_equal(pipe(gate), 0);
        fflush(NULL);
        for (int i = 0; i < CHILDREN; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                struct fg_store *st = NULL;
                char err[512], c;
                int v = 0;
                close(gate[1]);
                /* Wait for the gate to open so that all start together. */
                if (read(gate[0], &c, 1) < 0)
                    _exit(3);
                if (fg_store_open(url, NULL, &st, err, sizeof err) != 0) {
                    fprintf(stderr, "child: %s\n", err);
                    _exit(1);
                }
                int ok = fg_store_schema_version(st, &v) == 0 && v == latest;
                fg_store_close(st);
                _exit(ok ? 0 : 2);
            }
        }
        close(gate[0]);
        close(gate[1]);
        wait_children(pids, CHILDREN);
    }
}

static void t_open_errors(void **state)
{
    struct fx *f = *state;
    struct fg_store *st = (struct fg_store *)1;
    char err[512];

    if (!is_pg(f)) {
        assert_int_not_equal(
            fg_store_open("sqlite:/nonexistent-fg-dir/x.db", NULL, &st, err, sizeof err), 0);
        assert_null(st);
        assert_string_equal(err, "cannot open store sqlite:/nonexistent-fg-dir/x.db: unable to "
                                 "open database file");
        /* Relative paths resolve against relative_to; the directory is never created. */
        assert_int_not_equal(
            fg_store_open("sqlite:missing/x.db", f->be->base, &st, err, sizeof err), 0);
        char want[1200];
        snprintf(want, sizeof want,
                 "cannot open store sqlite:%s/missing/x.db: unable to open "
                 "database file",
                 f->be->base);
        assert_string_equal(err, want);
        /* A path under a regular file. */
        assert_int_not_equal(fg_store_open("sqlite:///etc/passwd/x.db", NULL, &st, err, sizeof err),
                             0);
        assert_non_null(strstr(err, "cannot open store sqlite:/etc/passwd/x.db: "));

        OK(fg_store_open("sqlite:rel.db", f->be->base, &st, err, sizeof err));
        fg_store_close(st);
        snprintf(want, sizeof want, "%s/rel.db", f->be->base);
        assert_int_equal(access(want, F_OK), 0);
        snprintf(want, sizeof want, "sqlite://%s/abs.db", f->be->base);
        OK(fg_store_open(want, NULL, &st, err, sizeof err));
        assert_string_equal(fg_store_driver_name(st), "sqlite");
        fg_store_close(st);
    } else {
        char url[1200];
        /* A database that does not exist; the password never shows in the message. */
        assert_int_equal(url_with_db(f->be->base, "fg_no_such_db", url, sizeof url), 0);
        assert_int_not_equal(fg_store_open(url, NULL, &st, err, sizeof err), 0);
        assert_null(st);
        assert_non_null(strstr(err, "cannot open store postgres"));
        assert_non_null(strstr(err, "fg_no_such_db"));
        assert_int_not_equal(fg_store_open("postgresql://u:sekrit@127.0.0.1:1/x?password=hush",
                                           NULL, &st, err, sizeof err),
                             0);
        assert_null(strstr(err, "sekrit"));
        assert_null(strstr(err, "hush"));
        assert_non_null(strstr(err, "cannot open store postgresql://u:***@127.0.0.1:1/x"));
    }
    assert_int_equal(fg_store_open("mysql://x/y", NULL, &st, err, sizeof err), FG_EINVAL);
    assert_null(st);
    assert_non_null(strstr(err, "mysql://x/y"));
    assert_int_equal(fg_store_open("sqlite:", NULL, &st, err, sizeof err), FG_EINVAL);
    assert_int_equal(fg_store_open("sqlite://host/x.db", NULL, &st, err, sizeof err), FG_EINVAL);
}

/* ---- rosters and offline messages ------------------------------------------------------ */

static void make_item(struct fg_roster_item *it, const char *contact, const char *name,
                      enum fg_roster_sub sub)
{
    memset(it, 0, sizeof *it);
    it->contact = fg_strdup(contact);
    it->name = name ? fg_strdup(name) : NULL;
    it->sub = sub;
    it->listed = true;
}

static int collect_owner(void *ctx, const char *owner, int64_t version,
                         const struct fg_roster_item *items, size_t n)
{
    char *out = ctx;
    size_t len = strlen(out);
    snprintf(out + len, 1024 - len, "%s:%lld:%zu;", owner, (long long)version, n);
    for (size_t i = 0; i < n; i++)
        if (!items[i].contact)
            return -1;
    return 0;
}

static void t_roster(void **state)
{
    struct fx *f = *state;
    struct fg_roster_item a, b, c;
    struct fg_roster_item *v = NULL;
    size_t n = 0;
    int64_t ver = -1;
    int64_t rev0 = revision(f);

    OK(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver));
    assert_int_equal(n, 0);
    assert_int_equal(ver, 0);
    fg_store_roster_items_free(v, n);

    make_item(&a, "romeo@b.test", "Romeo \"'; DROP TABLE roster; --", FG_ROSTER_BOTH);
    fg_strv_push(&a.groups, "Friends");
    fg_strv_push(&a.groups, "Montague \"family\" ☺");
    make_item(&b, "nurse@a.test", NULL, FG_ROSTER_NONE);
    b.ask = true;
    b.approved = true;
    make_item(&c, "stranger@c.test", NULL, FG_ROSTER_NONE);
    c.pending_in = true;
    c.listed = false;

    /* Writes need a transaction. */
    assert_int_equal(fg_store_roster_put(f->st, "juliet@a.test", &a, 1), FG_EIO);
    OK(fg_store_begin(f->st));
    OK(fg_store_roster_put(f->st, "juliet@a.test", &a, 1));
    OK(fg_store_roster_put(f->st, "juliet@a.test", &b, 2));
    OK(fg_store_roster_put(f->st, "juliet@a.test", &c, 2));
    OK(fg_store_roster_put(f->st, "romeo@b.test", &b, 7));
    OK(fg_store_commit(f->st));
    /* User data, not configuration: the revision does not move. */
    assert_int_equal(revision(f), rev0);

    reopen(f);
    OK(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver));
    assert_int_equal(n, 3);
    assert_int_equal(ver, 2);
    /* Sorted by contact. */
    assert_string_equal(v[0].contact, "nurse@a.test");
    assert_null(v[0].name);
    assert_null(v[0].groups);
    assert_int_equal(v[0].sub, FG_ROSTER_NONE);
    assert_true(v[0].ask && v[0].approved && !v[0].pending_in && v[0].listed);
    assert_string_equal(v[1].contact, "romeo@b.test");
    assert_string_equal(v[1].name, a.name);
    assert_int_equal(v[1].sub, FG_ROSTER_BOTH);
    assert_int_equal(fg_strv_len(v[1].groups), 2);
    assert_string_equal(v[1].groups[0], "Friends");
    assert_string_equal(v[1].groups[1], "Montague \"family\" ☺");
    assert_false(v[1].ask || v[1].approved || v[1].pending_in);
    assert_string_equal(v[2].contact, "stranger@c.test");
    assert_true(v[2].pending_in && !v[2].listed);
    fg_store_roster_items_free(v, n);

    /* Replace: the row changes in place. */
    fg_free(a.name);
    a.name = NULL;
    fg_strv_free(a.groups);
    a.groups = NULL;
    a.sub = FG_ROSTER_TO;
    OK(fg_store_begin(f->st));
    OK(fg_store_roster_put(f->st, "juliet@a.test", &a, 3));
    OK(fg_store_roster_delete(f->st, "juliet@a.test", "stranger@c.test", 4));
    assert_int_equal(fg_store_roster_delete(f->st, "juliet@a.test", "stranger@c.test", 5),
                     FG_ENOTFOUND);
    OK(fg_store_commit(f->st));
    OK(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver));
    assert_int_equal(n, 2);
    assert_int_equal(ver, 4); /* the failed delete changed nothing */
    assert_int_equal(v[1].sub, FG_ROSTER_TO);
    assert_null(v[1].name);
    assert_null(v[1].groups);
    fg_store_roster_items_free(v, n);

    /* Every owner, in byte order, with an owner that only has a version left. */
    OK(fg_store_begin(f->st));
    OK(fg_store_roster_delete(f->st, "romeo@b.test", "nurse@a.test", 8));
    OK(fg_store_commit(f->st));
    char seen[1024] = "";
    OK(fg_store_roster_each(f->st, collect_owner, seen));
    assert_string_equal(seen, "juliet@a.test:4:2;romeo@b.test:8:0;");

    fg_roster_item_clear(&a);
    fg_roster_item_clear(&b);
    fg_roster_item_clear(&c);
}

static int collect_count(void *ctx, const char *recipient, size_t n)
{
    char *out = ctx;
    size_t len = strlen(out);
    snprintf(out + len, 256 - len, "%s=%zu;", recipient, n);
    return 0;
}

static void t_offline(void **state)
{
    struct fx *f = *state;
    struct fg_offline_msg *v = NULL;
    size_t n = 0;
    long deleted = -1;
    int64_t rev0 = revision(f);
    static const char *const msgs[] = {
        "<message to='juliet@a.test' from='romeo@b.test/x'><body>1 &amp; ☺</body></message>",
        "<message to='juliet@a.test'><body>'2' \"?\" $1</body></message>",
        "<message to='juliet@a.test'><body>3</body></message>",
    };

    OK(fg_store_begin(f->st));
    for (int i = 0; i < 3; i++)
        OK(fg_store_offline_add(f->st, "juliet@a.test", 1000 + i, msgs[i], 3));
    /* The limit counts what the recipient holds. */
    assert_int_equal(fg_store_offline_add(f->st, "juliet@a.test", 2000, "<message/>", 3),
                     FG_ELIMIT);
    OK(fg_store_offline_add(f->st, "romeo@b.test", 2000, "<message/>", 3));
    OK(fg_store_offline_add(f->st, "juliet@a.test", 2001, "<message/>", 0)); /* no limit */
    OK(fg_store_commit(f->st));
    assert_int_equal(revision(f), rev0);

    char counts[256] = "";
    OK(fg_store_offline_counts(f->st, collect_count, counts));
    assert_true(!strcmp(counts, "juliet@a.test=4;romeo@b.test=1;") ||
                !strcmp(counts, "romeo@b.test=1;juliet@a.test=4;"));

    OK(fg_store_offline_list(f->st, "juliet@a.test", 0, &v, &n));
    assert_int_equal(n, 4);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(v[i].stanza, msgs[i]);
        assert_int_equal(v[i].stamp, 1000 + i);
        if (i)
            assert_true(v[i].id > v[i - 1].id);
    }
    int64_t second = v[1].id;
    fg_store_offline_free(v, n);
    OK(fg_store_offline_list(f->st, "juliet@a.test", 2, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].stanza, msgs[0]);
    fg_store_offline_free(v, n);

    OK(fg_store_begin(f->st));
    OK(fg_store_offline_delete(f->st, "juliet@a.test", second, &deleted));
    OK(fg_store_commit(f->st));
    assert_int_equal(deleted, 2);
    OK(fg_store_offline_list(f->st, "juliet@a.test", 0, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].stanza, msgs[2]);
    fg_store_offline_free(v, n);
    OK(fg_store_offline_list(f->st, "nobody@a.test", 0, &v, &n));
    assert_int_equal(n, 0);
    fg_store_offline_free(v, n);
}

static void t_user_delete_cascade(void **state)
{
    struct fx *f = *state;
    struct fg_user u;
    struct fg_roster_item it;
    struct fg_roster_item *v = NULL;
    struct fg_offline_msg *m = NULL;
    size_t n = 0;
    int64_t ver = 0;

    make_user(&u, "juliet@a.test", "j");
    make_item(&it, "romeo@b.test", NULL, FG_ROSTER_BOTH);
    OK(fg_store_begin(f->st));
    OK(fg_store_user_add(f->st, &u));
    OK(fg_store_roster_put(f->st, "juliet@a.test", &it, 5));
    OK(fg_store_roster_put(f->st, "romeo@b.test", &it, 1));
    fg_free(it.contact);
    it.contact = fg_strdup("juliet@a.test");
    OK(fg_store_roster_put(f->st, "other@a.test", &it, 1));
    OK(fg_store_offline_add(f->st, "juliet@a.test", 1, "<message/>", 0));
    OK(fg_store_user_delete(f->st, "juliet@a.test"));
    OK(fg_store_commit(f->st));

    /* Her roster and messages are gone; the version stays; other rosters are intact. */
    OK(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver));
    assert_int_equal(n, 0);
    assert_int_equal(ver, 5);
    fg_store_roster_items_free(v, n);
    OK(fg_store_roster_get(f->st, "other@a.test", &v, &n, &ver));
    assert_int_equal(n, 1);
    fg_store_roster_items_free(v, n);
    OK(fg_store_offline_list(f->st, "juliet@a.test", 0, &m, &n));
    assert_int_equal(n, 0);
    fg_store_offline_free(m, n);
    fg_roster_item_clear(&it);
}

static void t_open_another(void **state)
{
    struct fx *f = *state;
    struct fg_store *other = NULL;
    struct fg_roster_item it;
    struct fg_roster_item *v = NULL;
    size_t n = 0;
    int64_t ver = 0;
    char err[512];

    OK(fg_store_open_another(f->st, &other, err, sizeof err));
    assert_string_equal(fg_store_driver_name(other), fg_store_driver_name(f->st));
    make_item(&it, "romeo@b.test", "R", FG_ROSTER_TO);
    OK(fg_store_begin(other));
    OK(fg_store_roster_put(other, "juliet@a.test", &it, 1));
    OK(fg_store_commit(other));
    /* A write through one handle is seen through the other. */
    OK(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "R");
    fg_store_roster_items_free(v, n);
    fg_store_close(other);
    fg_roster_item_clear(&it);
}

/* ---- groups -------------------------------------------------------------------------- */

#define STORE_TESTS(be)                                                                            \
    {                                                                                              \
        cmocka_unit_test_prestate_setup_teardown(t_open_reopen, setup, teardown, &be),             \
            cmocka_unit_test_prestate_setup_teardown(t_partner_roundtrip, setup, teardown, &be),   \
            cmocka_unit_test_prestate_setup_teardown(t_partner_duplicates, setup, teardown, &be),  \
            cmocka_unit_test_prestate_setup_teardown(t_partner_update_delete, setup, teardown,     \
                                                     &be),                                         \
            cmocka_unit_test_prestate_setup_teardown(t_partner_list_owner, setup, teardown, &be),  \
            cmocka_unit_test_prestate_setup_teardown(t_gateway, setup, teardown, &be),             \
            cmocka_unit_test_prestate_setup_teardown(t_dialback_secret, setup, teardown, &be),     \
            cmocka_unit_test_prestate_setup_teardown(t_users, setup, teardown, &be),               \
            cmocka_unit_test_prestate_setup_teardown(t_admins, setup, teardown, &be),              \
            cmocka_unit_test_prestate_setup_teardown(t_tokens, setup, teardown, &be),              \
            cmocka_unit_test_prestate_setup_teardown(t_audit, setup, teardown, &be),               \
            cmocka_unit_test_prestate_setup_teardown(t_revision, setup, teardown, &be),            \
            cmocka_unit_test_prestate_setup_teardown(t_rollback, setup, teardown, &be),            \
            cmocka_unit_test_prestate_setup_teardown(t_transaction_misuse, setup, teardown, &be),  \
            cmocka_unit_test_prestate_setup_teardown(t_meta, setup, teardown, &be),                \
            cmocka_unit_test_prestate_setup_teardown(t_concurrent_writers, setup, teardown, &be),  \
            cmocka_unit_test_prestate_setup_teardown(t_concurrent_open, setup, teardown, &be),     \
            cmocka_unit_test_prestate_setup_teardown(t_open_errors, setup, teardown, &be),         \
            cmocka_unit_test_prestate_setup_teardown(t_roster, setup, teardown, &be),              \
            cmocka_unit_test_prestate_setup_teardown(t_offline, setup, teardown, &be),             \
            cmocka_unit_test_prestate_setup_teardown(t_user_delete_cascade, setup, teardown, &be), \
            cmocka_unit_test_prestate_setup_teardown(t_open_another, setup, teardown, &be),        \
    }

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = STORE_TESTS(sqlite_be);
    const struct CMUnitTest pg_tests[] = STORE_TESTS(pg_be);
    const char *pg_url = getenv("FG_TEST_PG_URL");
    const char *required = getenv("FG_TEST_PG_REQUIRED");
    int failed = 0;

    failed += cmocka_run_group_tests_name("store/sqlite", sqlite_tests, sqlite_group_setup,
                                          sqlite_group_teardown);
    if ((pg_url && *pg_url) || (required && !strcmp(required, "1"))) {
        int rc = cmocka_run_group_tests_name("store/postgresql", pg_tests, pg_group_setup,
                                             pg_group_teardown);
        /* A group whose setup failed must count as failed whatever cmocka returns. */
        failed += rc ? rc : !pg_ready;
    } else {
        fprintf(stderr, "test_store: PostgreSQL group skipped: FG_TEST_PG_URL is not set "
                        "(FG_TEST_PG_REQUIRED=1 makes this a failure)\n");
    }
    return failed ? 1 : 0;
}
