/* alloc.h - allocation wrappers. Out of memory is fatal: the process logs and aborts,
 * so callers never check for NULL. Nothing else here: buffers live in buf.h. */
#ifndef FG_ALLOC_H
#define FG_ALLOC_H

#include <stddef.h>

void *fg_malloc(size_t n);
void *fg_calloc(size_t count, size_t size);
void *fg_realloc(void *p, size_t n);
void fg_free(void *p);
char *fg_strdup(const char *s);
char *fg_strndup(const char *s, size_t n);
/* Like asprintf, aborting on failure. */
char *fg_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* NULL-terminated string vectors (lists of domains, JIDs). */
char **fg_strv_dup(char *const *v);
size_t fg_strv_len(char *const *v);
void fg_strv_push(char ***v, const char *s); /* appends a copy */
void fg_strv_free(char **v);

#endif
