/* sqlite.c - the SQLite store driver: opens a database file, runs one statement with text
 * parameters, maps SQLite errors to FG_E* codes. It holds no SQL of the store itself
 * (store.c does); only the connection settings and transaction verbs are here. */
#include <sqlite3.h>
#include <stdio.h>

#include "core/alloc.h"
#include "core/err.h"
#include "store/driver.h"

/* Writers wait this long for each other before FG_EBUSY. */
#define SQLITE_BUSY_MS 10000

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg ? msg : "unknown SQLite error");
}

static int map_error(sqlite3 *db)
{
    int ext = sqlite3_extended_errcode(db);
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
        return FG_EEXISTS;
    if ((ext & 0xff) == SQLITE_BUSY || (ext & 0xff) == SQLITE_LOCKED)
        return FG_EBUSY;
    return FG_EIO;
}

static int run_simple(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = map_error(db);
        set_err(err, errlen, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* Switching a new database to WAL takes an exclusive lock without calling the busy
 * handler, so of several processes opening a fresh store at once all but one would fail
 * with "database is locked"; they wait here instead, as long as the busy timeout. */
static int set_wal(sqlite3 *db, char *err, size_t errlen)
{
    for (int waited = 0;; waited += 20) {
        int rc = run_simple(db, "PRAGMA journal_mode = WAL", err, errlen);
        if (rc != FG_EBUSY || waited >= SQLITE_BUSY_MS)
            return rc;
        sqlite3_sleep(20);
    }
}

static int sq_open(const char *target, void **conn, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    *conn = NULL;
    /* No SQLITE_OPEN_URI: the path is a plain file name, never "file:..." options.
     * SQLite creates the file but not its directory, which is what we want: a missing
     * directory is a configuration mistake to report. */
    int rc = sqlite3_open_v2(target, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
    if (run_simple(db, "PRAGMA foreign_keys = ON", err, errlen) != 0)
        goto fail;
    /* WAL: readers (CLI, control panel) never block the writer and vice versa. This is
     * also the first statement that reads the file, so an unusable path fails here. */
    if (set_wal(db, err, errlen) != 0)
        goto fail;
    *conn = db;
    return 0;
fail:
    sqlite3_close(db);
    return FG_EIO;
}

static void sq_close(void *conn)
{
    sqlite3_close(conn);
}

static int sq_exec(void *conn, const char *sql, int n, const char *const *params, fg_row_cb cb,
                   void *ctx, long *changes, char *err, size_t errlen)
{
    sqlite3 *db = conn;
    sqlite3_stmt *stmt = NULL;
    const char **cols = NULL;
    const char *tail = NULL;
    int rc = FG_EIO;

    if (changes)
        *changes = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, &tail) != SQLITE_OK) {
        rc = map_error(db);
        set_err(err, errlen, sqlite3_errmsg(db));
        goto done;
    }
    if (!stmt || (tail && *tail)) {
        set_err(err, errlen, "exactly one SQL statement expected");
        goto done;
    }
    if (sqlite3_bind_parameter_count(stmt) != n) {
        set_err(err, errlen, "SQL parameter count does not match");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int brc = params[i] ? sqlite3_bind_text(stmt, i + 1, params[i], -1, SQLITE_STATIC)
                            : sqlite3_bind_null(stmt, i + 1);
        if (brc != SQLITE_OK) {
            rc = map_error(db);
            set_err(err, errlen, sqlite3_errmsg(db));
            goto done;
        }
    }
    int ncols = sqlite3_column_count(stmt);
    cols = fg_calloc((size_t)ncols + 1, sizeof *cols);
    for (;;) {
        int s = sqlite3_step(stmt);
        if (s == SQLITE_DONE)
            break;
        if (s != SQLITE_ROW) {
            rc = map_error(db);
            set_err(err, errlen, sqlite3_errmsg(db));
            goto done;
        }
        if (!cb)
            continue;
        for (int i = 0; i < ncols; i++)
            cols[i] = sqlite3_column_type(stmt, i) == SQLITE_NULL
                          ? NULL
                          : (const char *)sqlite3_column_text(stmt, i);
        if (cb(ctx, ncols, cols))
            break;
    }
    if (changes)
        *changes = sqlite3_changes(db);
    rc = 0;
done:
    fg_free(cols);
    sqlite3_finalize(stmt);
    return rc;
}

static int sq_begin_write(void *conn, char *err, size_t errlen)
{
    /* IMMEDIATE takes the write lock now, so a read-check-write after it cannot race. */
    return run_simple(conn, "BEGIN IMMEDIATE", err, errlen);
}

static int sq_commit(void *conn, char *err, size_t errlen)
{
    return run_simple(conn, "COMMIT", err, errlen);
}

static void sq_rollback(void *conn)
{
    /* Fails harmlessly when SQLite already rolled back on its own (for example on
     * SQLITE_FULL); there is nothing more to undo then. */
    sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
}

const struct fg_store_driver fg_store_sqlite_driver = {
    .name = "sqlite",
    .autoincrement_pk = "INTEGER PRIMARY KEY AUTOINCREMENT",
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .begin_write = sq_begin_write,
    .commit = sq_commit,
    .rollback = sq_rollback,
};
