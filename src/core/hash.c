/* hash.c - open-addressing hash table with linear probing and SipHash-1-3 keyed by a
 * random per-process key. No tombstones: removal shifts the following entries back. */
#include "core/hash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"

static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_seed(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* No entropy at all is unexpected; a time and pid mix still beats a fixed key. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        k[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ull ^ (uint64_t)(uintptr_t)&ts;
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t fg_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    pthread_once(&sip_once, sip_seed);
    uint64_t v0 = 0x736f6d6570736575ull ^ sip_k0;
    uint64_t v1 = 0x646f72616e646f6dull ^ sip_k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ sip_k0;
    uint64_t v3 = 0x7465646279746573ull ^ sip_k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load64_le(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void fg_hash_init(struct fg_hash *h)
{
    memset(h, 0, sizeof *h);
}

void fg_hash_clear(struct fg_hash *h)
{
    fg_free(h->slots);
    memset(h, 0, sizeof *h);
}

/* The slot holding key, or the empty slot where it would go. cap must be > 0. */
static size_t find_slot(const struct fg_hash *h, const char *key, size_t len, uint64_t hash)
{
    size_t mask = h->cap - 1;
    size_t i = (size_t)hash & mask;
    for (;;) {
        const struct fg_hash_slot *s = &h->slots[i];
        if (!s->key)
            return i;
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static void grow(struct fg_hash *h)
{
    size_t old_cap = h->cap;
    struct fg_hash_slot *old = h->slots;
    h->cap = old_cap ? old_cap * 2 : 16;
    h->slots = fg_calloc(h->cap, sizeof *h->slots);
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        size_t j = (size_t)old[i].hash & (h->cap - 1);
        while (h->slots[j].key)
            j = (j + 1) & (h->cap - 1);
        h->slots[j] = old[i];
    }
    fg_free(old);
}

void *fg_hash_get(const struct fg_hash *h, const char *key, size_t len)
{
    if (!h->n)
        return NULL;
    size_t i = find_slot(h, key, len, fg_hash_bytes(key, len));
    return h->slots[i].key ? h->slots[i].value : NULL;
}

void fg_hash_put(struct fg_hash *h, const char *key, size_t len, void *value)
{
    /* Load factor at most 3/4 keeps probe sequences short. */
    if ((h->n + 1) * 4 > h->cap * 3)
        grow(h);
    uint64_t hash = fg_hash_bytes(key, len);
    size_t i = find_slot(h, key, len, hash);
    struct fg_hash_slot *s = &h->slots[i];
    if (!s->key)
        h->n++;
    s->key = key;
    s->len = len;
    s->hash = hash;
    s->value = value;
}

void *fg_hash_remove(struct fg_hash *h, const char *key, size_t len)
{
    if (!h->n)
        return NULL;
    size_t mask = h->cap - 1;
    size_t i = find_slot(h, key, len, fg_hash_bytes(key, len));
    if (!h->slots[i].key)
        return NULL;
    void *value = h->slots[i].value;
    /* Backward shift: move later entries of the run into the hole when their home slot
     * is not between the hole and their position (cyclically). */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!h->slots[j].key)
            break;
        size_t home = (size_t)h->slots[j].hash & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        h->slots[i] = h->slots[j];
        i = j;
    }
    memset(&h->slots[i], 0, sizeof h->slots[i]);
    h->n--;
    return value;
}

bool fg_hash_next(const struct fg_hash *h, size_t *pos, const char **key, void **value)
{
    for (size_t i = *pos; i < h->cap; i++) {
        if (h->slots[i].key) {
            if (key)
                *key = h->slots[i].key;
            if (value)
                *value = h->slots[i].value;
            *pos = i + 1;
            return true;
        }
    }
    *pos = h->cap;
    return false;
}
