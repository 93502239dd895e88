/* log.c - key=value event logging (format in log.h). */
#include "log.h"
#include "buf.h"
#include "clock.h"

#include <stdarg.h>
#include <string.h>

static enum fg_log_level level = FG_LOG_INFO;
static FILE *out;

static const char *const names[] = {"error", "warn", "info", "debug"};

int fg_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *fg_log_level_name(enum fg_log_level l)
{
    return (unsigned)l < 4 ? names[l] : "info";
}

void fg_log_set_level(enum fg_log_level l)
{
    level = l;
}

void fg_log_set_file(FILE *f)
{
    out = f;
}

int fg_log_enabled(enum fg_log_level l)
{
    return l <= level;
}

static int needs_quotes(const char *v)
{
    if (!*v)
        return 1;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return 1;
    return 0;
}

void fg_log_append_pair(struct fg_buf *b, const char *key, const char *value)
{
    if (!value)
        value = "";
    if (b->len)
        fg_buf_putc(b, ' ');
    fg_buf_puts(b, key);
    fg_buf_putc(b, '=');
    if (!needs_quotes(value)) {
        fg_buf_puts(b, value);
        return;
    }
    fg_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fg_buf_putc(b, '\\');
            fg_buf_putc(b, (char)*p);
        } else if (*p == '\n') {
            fg_buf_puts(b, "\\n");
        } else if (*p < ' ' || *p == 0x7f) {
            fg_buf_printf(b, "\\x%02x", *p);
        } else {
            fg_buf_putc(b, (char)*p);
        }
    }
    fg_buf_putc(b, '"');
}

void fg_log(enum fg_log_level l, const char *event, ...)
{
    if (!fg_log_enabled(l))
        return;
    char ts[32];
    fg_time_rfc3339(fg_time_now(), ts, sizeof ts);
    struct fg_buf line = {0};
    fg_buf_printf(&line, "%s %s", ts, fg_log_level_name(l));
    fg_log_append_pair(&line, "event", event);
    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        fg_log_append_pair(&line, k, va_arg(ap, const char *));
    }
    va_end(ap);
    fg_buf_putc(&line, '\n');
    FILE *f = out ? out : stderr;
    fwrite(line.data, 1, line.len, f);
    fflush(f);
    fg_buf_free(&line);
}
