/* pg.c - the PostgreSQL store driver (libpq): connects with a conninfo URI, runs one
 * statement with text parameters ("?" rewritten to $n), maps SQLSTATEs to FG_E* codes.
 * It holds no SQL of the store itself (store.c does); only transaction verbs are here. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "store/driver.h"

/* Key of the transaction-level advisory lock every writer takes: the store's write lock,
 * the equivalent of SQLite's BEGIN IMMEDIATE. Any constant works as long as all fedgate
 * processes agree; this one spells "fedg". */
#define PG_WRITE_LOCK_KEY "1717920871"

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (!err || !errlen)
        return;
    snprintf(err, errlen, "%s", msg && *msg ? msg : "unknown PostgreSQL error");
    /* libpq messages end in a newline; ours are embedded in longer lines. */
    size_t l = strlen(err);
    while (l > 0 && (err[l - 1] == '\n' || err[l - 1] == ' '))
        err[--l] = '\0';
}

/* Notices ("relation already exists, skipping") are not errors; keep them off stderr. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int pg_open(const char *target, void **conn, char *err, size_t errlen)
{
    /* expand_dbname lets "dbname" carry the whole URI; the keys after it override it, so
     * the client encoding is UTF-8 whatever the server's default is. */
    const char *const keys[] = {"dbname", "client_encoding", "fallback_application_name", NULL};
    const char *const vals[] = {target, "UTF8", "fedgate", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    *conn = NULL;
    if (!c) {
        set_err(err, errlen, "out of memory");
        return FG_EIO;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        set_err(err, errlen, PQerrorMessage(c));
        PQfinish(c);
        return FG_EIO;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    *conn = c;
    return 0;
}

static void pg_close(void *conn)
{
    PQfinish(conn);
}

/* "?" -> "$1", "$2", ... outside quoted strings and identifiers. Returns the count. */
static int rewrite_placeholders(const char *sql, struct fg_buf *out)
{
    int n = 0;
    char quote = 0;
    for (const char *p = sql; *p; p++) {
        if (quote) {
            if (*p == quote)
                quote = 0; /* a doubled quote re-enters at once: same result */
            fg_buf_putc(out, *p);
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
            fg_buf_putc(out, *p);
        } else if (*p == '?') {
            fg_buf_printf(out, "$%d", ++n);
        } else {
            fg_buf_putc(out, *p);
        }
    }
    return n;
}

static int map_sqlstate(const char *state)
{
    if (!state)
        return FG_EIO;
    if (!strcmp(state, "23505")) /* unique_violation */
        return FG_EEXISTS;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
        return FG_EBUSY; /* serialization failure, deadlock, lock not available */
    return FG_EIO;
}

static int pg_exec(void *conn, const char *sql, int n, const char *const *params, fg_row_cb cb,
                   void *ctx, long *changes, char *err, size_t errlen)
{
    struct fg_buf q = {0};
    PGresult *res = NULL;
    const char **cols = NULL;
    int rc = FG_EIO;

    if (changes)
        *changes = 0;
    if (rewrite_placeholders(sql, &q) != n) {
        set_err(err, errlen, "SQL parameter count does not match");
        goto done;
    }
    res = PQexecParams(conn, fg_buf_str(&q), n, NULL, params, NULL, NULL, 0);
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
        break;
    case PGRES_TUPLES_OK: {
        int rows = PQntuples(res), ncols = PQnfields(res);
        cols = fg_calloc((size_t)ncols + 1, sizeof *cols);
        for (int r = 0; cb && r < rows; r++) {
            for (int i = 0; i < ncols; i++)
                cols[i] = PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
            if (cb(ctx, ncols, cols))
                break;
        }
        break;
    }
    default: {
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        rc = map_sqlstate(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
        set_err(err, errlen, primary ? primary : PQerrorMessage(conn));
        goto done;
    }
    }
    if (changes) {
        const char *t = PQcmdTuples(res);
        *changes = *t ? strtol(t, NULL, 10) : 0;
    }
    rc = 0;
done:
    fg_free(cols);
    PQclear(res);
    fg_buf_free(&q);
    return rc;
}

static int simple(PGconn *c, const char *sql, char *err, size_t errlen)
{
    return pg_exec(c, sql, 0, NULL, NULL, NULL, NULL, err, errlen);
}

static int pg_begin_write(void *conn, char *err, size_t errlen)
{
    int rc = simple(conn, "BEGIN", err, errlen);
    if (rc != 0)
        return rc;
    /* Serialises all writers for the whole transaction (released at COMMIT/ROLLBACK).
     * Under READ COMMITTED every later statement sees what the previous writer committed,
     * so read-check-write sequences behave as under SQLite's single writer. */
    rc = simple(conn, "SELECT pg_advisory_xact_lock(" PG_WRITE_LOCK_KEY ")", err, errlen);
    if (rc != 0)
        simple(conn, "ROLLBACK", NULL, 0);
    return rc;
}

static int pg_commit(void *conn, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "COMMIT");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = map_sqlstate(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
        set_err(err, errlen, PQerrorMessage(conn));
    } else if (!strcmp(PQcmdStatus(res), "ROLLBACK")) {
        /* COMMIT of a transaction that had failed succeeds as a rollback: not a commit. */
        set_err(err, errlen, "the transaction had failed and was rolled back");
        rc = FG_EIO;
    }
    PQclear(res);
    return rc;
}

static void pg_rollback(void *conn)
{
    PQclear(PQexec(conn, "ROLLBACK"));
}

const struct fg_store_driver fg_store_pg_driver = {
    .name = "postgresql",
    .autoincrement_pk = "BIGSERIAL PRIMARY KEY",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .begin_write = pg_begin_write,
    .commit = pg_commit,
    .rollback = pg_rollback,
};
