/* hash.h - open-addressing hash table (linear probing) from byte-string keys to pointers,
 * with SipHash-1-3 under a random per-process key against chosen collisions. Keys are not
 * copied: a key must stay valid while its entry exists (usually the value owns it). */
#ifndef FG_HASH_H
#define FG_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fg_hash_slot {
    const char *key; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    void *value;
};

/* All zero is a valid empty table. */
struct fg_hash {
    struct fg_hash_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

/* SipHash-1-3 of data with the process's random key. */
uint64_t fg_hash_bytes(const void *data, size_t len);

void fg_hash_init(struct fg_hash *h);
/* Frees the slots (not the keys or values) and leaves an empty table. */
void fg_hash_clear(struct fg_hash *h);

/* The value stored under key[0..len), or NULL. */
void *fg_hash_get(const struct fg_hash *h, const char *key, size_t len);
/* Stores value under key (replacing a previous value: the new key pointer is kept). */
void fg_hash_put(struct fg_hash *h, const char *key, size_t len, void *value);
/* Removes the entry and returns its value, or NULL when there is none. */
void *fg_hash_remove(struct fg_hash *h, const char *key, size_t len);
static inline size_t fg_hash_count(const struct fg_hash *h)
{
    return h->n;
}

/* Iteration: size_t pos = 0; while (fg_hash_next(h, &pos, &key, &value)) ...
 * The table must not change during the walk. key may be NULL. */
bool fg_hash_next(const struct fg_hash *h, size_t *pos, const char **key, void **value);

#endif
