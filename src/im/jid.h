/* jid.h - the JID checks the router needs (RFC 7622): split, limits, forbidden characters
 * and a canonical form for lookups (lowercase A-label domain, ASCII localpart lowercased).
 * No full PRECIS: a non-ASCII localpart is kept as received. No I/O. */
#ifndef FG_IM_JID_H
#define FG_IM_JID_H

#include <stddef.h>

#include "xml/arena.h"

#define FG_IM_JID_PART_MAX 1023
#define FG_IM_JID_MAX (3 * FG_IM_JID_PART_MAX + 2)

struct fg_im_jid {
    const char *s; /* the canonical JID, NUL-terminated */
    size_t len;
    size_t local_len;   /* 0 when there is no localpart */
    const char *domain; /* inside s */
    size_t domain_len;
    size_t bare_len;      /* bytes of "local@domain" (or "domain") at the start of s */
    const char *resource; /* inside s, NULL when there is none */
    size_t resource_len;
};

/* Parses s into j. The canonical text is s itself when s already is canonical, else a
 * copy in arena. 0 or FG_EINVAL. */
int fg_im_jid_parse(struct fg_arena *arena, const char *s, struct fg_im_jid *j);

#endif
