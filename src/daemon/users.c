/* users.c - the in-memory account directory (users.h): one hash table keyed by bare JID. */
#include "users.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/hash.h"

#include <string.h>

struct fg_userdir {
    struct fg_hash by_jid;
    struct fg_user *users;
    size_t n;
};

struct fg_userdir *fg_userdir_load(struct fg_store *st, int *err)
{
    char **jids = NULL;
    *err = fg_store_user_list(st, &jids);
    if (*err != FG_OK)
        return NULL;
    struct fg_userdir *d = fg_calloc(1, sizeof *d);
    size_t n = fg_strv_len(jids);
    d->users = fg_calloc(n ? n : 1, sizeof *d->users);
    fg_hash_init(&d->by_jid);
    for (size_t i = 0; i < n; i++) {
        struct fg_user *u = &d->users[d->n];
        int rc = fg_store_user_get(st, jids[i], u);
        if (rc == FG_ENOTFOUND)
            continue; /* removed between the list and the read */
        if (rc != FG_OK) {
            *err = rc;
            fg_strv_free(jids);
            fg_userdir_free(d);
            return NULL;
        }
        d->n++;
        fg_hash_put(&d->by_jid, u->jid, strlen(u->jid), u);
    }
    fg_strv_free(jids);
    return d;
}

void fg_userdir_free(struct fg_userdir *d)
{
    if (!d)
        return;
    fg_hash_clear(&d->by_jid);
    /* the credentials are secrets: do not leave them in freed memory */
    memset(d->users, 0, d->n * sizeof *d->users);
    fg_free(d->users);
    fg_free(d);
}

const struct fg_user *fg_userdir_get(const struct fg_userdir *d, const char *bare_jid)
{
    return d ? fg_hash_get(&d->by_jid, bare_jid, strlen(bare_jid)) : NULL;
}

size_t fg_userdir_count(const struct fg_userdir *d)
{
    return d ? d->n : 0;
}
