/* err.c - names of the shared error codes. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *fg_strerror(int err)
{
    switch (err) {
    case FG_OK:
        return "ok";
    case FG_EIO:
        return "input/output error";
    case FG_ENOTFOUND:
        return "not found";
    case FG_EEXISTS:
        return "already exists";
    case FG_EINVAL:
        return "invalid value";
    case FG_EREFUSED:
        return "refused by a rule";
    case FG_EBUSY:
        return "busy";
    case FG_ELIMIT:
        return "limit exceeded";
    }
    return "unknown error";
}

void fg_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
