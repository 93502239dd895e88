/* arena.h - a bump allocator: memory is taken from chunks that grow on demand and is
 * given back all at once with fg_arena_free. There is no per-object free and no
 * thread safety; one arena belongs to one owner (a stanza, a stream header). */
#ifndef FG_ARENA_H
#define FG_ARENA_H

#include <stddef.h>

struct fg_arena;

/* A new arena whose first chunk holds `first` bytes (0 = 2048), the arena's own
 * bookkeeping included, so the first allocations cost one malloc in total. Out of
 * memory aborts (see core/alloc.h). */
struct fg_arena *fg_arena_new(size_t first);

/* Frees every chunk and the arena itself. NULL is allowed. */
void fg_arena_free(struct fg_arena *a);

/* n bytes aligned to 8 (pointers, size_t, 64-bit integers; not long double). */
void *fg_arena_alloc(struct fg_arena *a, size_t n);

/* Like fg_arena_alloc, zero-filled. */
void *fg_arena_zalloc(struct fg_arena *a, size_t n);

/* n bytes with no alignment: for strings, packs tighter than fg_arena_alloc. */
void *fg_arena_alloc_bytes(struct fg_arena *a, size_t n);

/* A NUL-terminated copy of s[0..n). s may contain no NUL; it need not be terminated. */
char *fg_arena_strndup(struct fg_arena *a, const char *s, size_t n);
char *fg_arena_strdup(struct fg_arena *a, const char *s);

/* Grows the block p (old_n bytes, from fg_arena_alloc_bytes or a previous grow) to
 * new_n >= old_n bytes and returns it. When p is the arena's most recent allocation
 * and the chunk has room it grows in place (no copy); otherwise the contents move to
 * a new block with headroom, so repeated growth copies O(total) bytes. p may be NULL
 * (old_n 0). */
void *fg_arena_grow(struct fg_arena *a, void *p, size_t old_n, size_t new_n);

/* Bytes obtained from the system for this arena (chunks and bookkeeping). */
size_t fg_arena_size(const struct fg_arena *a);

#endif
