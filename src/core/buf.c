/* buf.c - growable byte buffers. */
#include "buf.h"
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void reserve(struct fg_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = fg_realloc(b->data, cap);
    b->cap = cap;
}

void fg_buf_append(struct fg_buf *b, const void *p, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void fg_buf_puts(struct fg_buf *b, const char *s)
{
    fg_buf_append(b, s, strlen(s));
}

void fg_buf_putc(struct fg_buf *b, char c)
{
    fg_buf_append(b, &c, 1);
}

void fg_buf_printf(struct fg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fg_buf_reset(struct fg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void fg_buf_free(struct fg_buf *b)
{
    fg_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

const char *fg_buf_str(const struct fg_buf *b)
{
    return b->data ? b->data : "";
}

char *fg_buf_steal(struct fg_buf *b)
{
    char *d = b->data ? b->data : fg_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
