/* arena.c - bump allocation in chunks, freed in one go. Chunk sizes double up to
 * 64 KiB; a request larger than that gets a chunk of its own. No per-object free. */
#include "xml/arena.h"
#include "core/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chunk {
    struct chunk *prev;
    size_t size;
};

struct fg_arena {
    char *cur;
    char *end;
    struct chunk *chunks; /* newest first; the oldest one also holds this struct */
    size_t total;
    size_t next; /* size of the next chunk */
};

#define CHUNK_HDR ((sizeof(struct chunk) + 15) & ~(size_t)15)
#define ARENA_HDR ((sizeof(struct fg_arena) + 15) & ~(size_t)15)
#define MAX_STEP ((size_t)64 * 1024)
#define ALIGN 8

static void too_big(size_t n)
{
    fprintf(stderr, "fatal: arena request of %zu bytes\n", n);
    abort();
}

static char *align_up(char *p, size_t align)
{
    uintptr_t u = (uintptr_t)p;
    return p + ((align - (u & (align - 1))) & (align - 1));
}

/* Starts a new chunk with room for at least `reserve` bytes at `align`, then takes n. */
static void *slow_alloc(struct fg_arena *a, size_t n, size_t align, size_t reserve)
{
    if (reserve > SIZE_MAX / 4)
        too_big(reserve);
    size_t size = a->next;
    if (reserve + CHUNK_HDR + align > size)
        size = reserve + CHUNK_HDR + align;
    struct chunk *c = fg_malloc(size);
    c->prev = a->chunks;
    c->size = size;
    a->chunks = c;
    a->total += size;
    a->end = (char *)c + size;
    char *p = align_up((char *)c + CHUNK_HDR, align);
    a->cur = p + n;
    if (a->next < MAX_STEP)
        a->next *= 2;
    return p;
}

static void *take(struct fg_arena *a, size_t n, size_t align)
{
    char *p = align == 1 ? a->cur : align_up(a->cur, align);
    if (p <= a->end && n <= (size_t)(a->end - p)) {
        a->cur = p + n;
        return p;
    }
    return slow_alloc(a, n, align, n);
}

struct fg_arena *fg_arena_new(size_t first)
{
    size_t min = CHUNK_HDR + ARENA_HDR + 64;
    if (first == 0)
        first = 2048;
    if (first < min)
        first = min;
    struct chunk *c = fg_malloc(first);
    c->prev = NULL;
    c->size = first;
    struct fg_arena *a = (struct fg_arena *)((char *)c + CHUNK_HDR);
    a->chunks = c;
    a->total = first;
    a->cur = (char *)a + ARENA_HDR;
    a->end = (char *)c + first;
    a->next = first * 2 < 1024 ? 1024 : first * 2;
    if (a->next > MAX_STEP)
        a->next = MAX_STEP;
    return a;
}

void fg_arena_free(struct fg_arena *a)
{
    if (!a)
        return;
    struct chunk *c = a->chunks;
    while (c) {
        struct chunk *prev = c->prev;
        fg_free(c); /* the oldest chunk holds *a, so it goes last */
        c = prev;
    }
}

void *fg_arena_alloc(struct fg_arena *a, size_t n)
{
    return take(a, n, ALIGN);
}

void *fg_arena_zalloc(struct fg_arena *a, size_t n)
{
    void *p = take(a, n, ALIGN);
    memset(p, 0, n);
    return p;
}

void *fg_arena_alloc_bytes(struct fg_arena *a, size_t n)
{
    return take(a, n, 1);
}

char *fg_arena_strndup(struct fg_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        too_big(n);
    char *d = take(a, n + 1, 1);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *fg_arena_strdup(struct fg_arena *a, const char *s)
{
    return fg_arena_strndup(a, s, strlen(s));
}

void *fg_arena_grow(struct fg_arena *a, void *p, size_t old_n, size_t new_n)
{
    if (new_n < old_n)
        too_big(new_n);
    size_t add = new_n - old_n;
    if (p && (char *)p + old_n == a->cur && add <= (size_t)(a->end - a->cur)) {
        a->cur += add;
        return p;
    }
    char *q;
    if (new_n <= (size_t)(a->end - a->cur)) {
        q = a->cur;
        a->cur += new_n;
    } else {
        if (new_n > SIZE_MAX / 4)
            too_big(new_n);
        q = slow_alloc(a, new_n, 1, 2 * new_n); /* headroom: the next grows stay in place */
    }
    if (old_n)
        memcpy(q, p, old_n);
    return q;
}

size_t fg_arena_size(const struct fg_arena *a)
{
    return a->total;
}
