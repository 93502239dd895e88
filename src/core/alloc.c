/* alloc.c - allocation wrappers that abort on exhaustion, and string vectors. */
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory (%zu bytes)\n", n);
    abort();
}

void *fg_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *fg_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *fg_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

void fg_free(void *p)
{
    free(p);
}

char *fg_strdup(const char *s)
{
    return fg_strndup(s, strlen(s));
}

char *fg_strndup(const char *s, size_t n)
{
    char *d = fg_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *fg_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *s = fg_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

size_t fg_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

char **fg_strv_dup(char *const *v)
{
    size_t n = fg_strv_len(v);
    char **d = fg_calloc(n + 1, sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = fg_strdup(v[i]);
    return d;
}

void fg_strv_push(char ***v, const char *s)
{
    size_t n = fg_strv_len(*v);
    *v = fg_realloc(*v, (n + 2) * sizeof **v);
    (*v)[n] = fg_strdup(s);
    (*v)[n + 1] = NULL;
}

void fg_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        fg_free(v[i]);
    fg_free(v);
}
