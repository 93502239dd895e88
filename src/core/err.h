/* err.h - the error convention shared by every module.
 * Functions return int: 0 (FG_OK) on success, a negative FG_E* code on failure.
 * Details for people travel separately (an error buffer or struct), never in the code. */
#ifndef FG_ERR_H
#define FG_ERR_H

enum fg_err {
    FG_OK = 0,
    FG_EIO = -1,       /* store unreachable, I/O failure, anything unexpected */
    FG_ENOTFOUND = -2, /* the object does not exist */
    FG_EEXISTS = -3,   /* the object already exists */
    FG_EINVAL = -4,    /* malformed or out-of-range value */
    FG_EREFUSED = -5,  /* a rule refused the change (R2, R3, D1, D2, D3, A1) */
    FG_EBUSY = -6,     /* contention that outlasted the busy timeout */
    FG_ELIMIT = -7,    /* a size or count limit was hit */
};

/* A short English name for an error code ("not found"), never NULL. */
const char *fg_strerror(int err);

#include <stddef.h>
/* Writes a message for people to err when there is one (err NULL or errlen 0: nothing);
 * always NUL-terminated, cut when it does not fit. */
void fg_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
