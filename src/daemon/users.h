/* users.h - the daemon's in-memory directory of local accounts (bare JID -> SCRAM
 * credentials), loaded from the store at start and again when the configuration revision
 * changes, so a login needs no store round trip. Read on the loop thread only; a new
 * directory is built on a worker and swapped in whole. */
#ifndef FG_USERS_H
#define FG_USERS_H

#include <stdbool.h>

#include "store/store.h"

struct fg_userdir;

/* Builds a directory from every user in the store (blocking). NULL with *err set. */
struct fg_userdir *fg_userdir_load(struct fg_store *st, int *err);
void fg_userdir_free(struct fg_userdir *d);
/* The account of a prepared bare JID, or NULL. */
const struct fg_user *fg_userdir_get(const struct fg_userdir *d, const char *bare_jid);
size_t fg_userdir_count(const struct fg_userdir *d);

#endif
