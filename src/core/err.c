/* err.c - names of the shared error codes. */
#include "err.h"

const char *fg_strerror(int err)
{
    switch (err) {
    case FG_OK: return "ok";
    case FG_EIO: return "input/output error";
    case FG_ENOTFOUND: return "not found";
    case FG_EEXISTS: return "already exists";
    case FG_EINVAL: return "invalid value";
    case FG_EREFUSED: return "refused by a rule";
    case FG_EBUSY: return "busy";
    case FG_ELIMIT: return "limit exceeded";
    }
    return "unknown error";
}
