/* driver.h - what a store driver provides: open, close, run one statement with text
 * parameters and text results, and transaction control. SQL uses "?" placeholders; the
 * PostgreSQL driver rewrites them to $1, $2, ... Internal to src/store. */
#ifndef FG_STORE_DRIVER_H
#define FG_STORE_DRIVER_H

#include <stddef.h>

/* Called once per result row; cols[i] is NULL for SQL NULL. Return nonzero to stop. */
typedef int (*fg_row_cb)(void *ctx, int ncols, const char *const *cols);

struct fg_store_driver {
    const char *name;
    /* SQL for the parts of the dialects that differ. */
    const char *autoincrement_pk; /* "INTEGER PRIMARY KEY AUTOINCREMENT" / "BIGSERIAL PRIMARY KEY" */
    int (*open)(const char *target, void **conn, char *err, size_t errlen);
    void (*close)(void *conn);
    /* Runs sql with n text params (NULL = SQL NULL). Returns 0, FG_EEXISTS on a unique
     * violation, FG_EBUSY, or FG_EIO; err gets the driver's message. changes gets the
     * number of rows changed (may be NULL). */
    int (*exec)(void *conn, const char *sql, int n, const char *const *params, fg_row_cb cb,
                void *ctx, long *changes, char *err, size_t errlen);
    int (*begin_write)(void *conn, char *err, size_t errlen);
    int (*commit)(void *conn, char *err, size_t errlen);
    void (*rollback)(void *conn);
};

extern const struct fg_store_driver fg_store_sqlite_driver;
extern const struct fg_store_driver fg_store_pg_driver;

#endif
