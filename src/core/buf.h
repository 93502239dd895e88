/* buf.h - growable byte buffers with explicit lengths. Always NUL-terminated after
 * data[len] so they can be used as C strings; the length is the truth. */
#ifndef FG_BUF_H
#define FG_BUF_H

#include <stddef.h>

struct fg_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

void fg_buf_append(struct fg_buf *b, const void *p, size_t n);
void fg_buf_puts(struct fg_buf *b, const char *s);
void fg_buf_putc(struct fg_buf *b, char c);
void fg_buf_printf(struct fg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fg_buf_reset(struct fg_buf *b); /* len = 0, keeps the memory */
void fg_buf_free(struct fg_buf *b);
/* Returns the data as a C string ("" when empty); the buffer keeps ownership. */
const char *fg_buf_str(const struct fg_buf *b);
/* Hands the data to the caller (fg_free it) and leaves the buffer empty. */
char *fg_buf_steal(struct fg_buf *b);

#endif
