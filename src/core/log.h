/* log.h - one event per line: "TIME LEVEL event=NAME key=value ...", values with spaces
 * or quotes quoted (SPEC section 7). Writes to standard error or the configured file.
 * It never sees message bodies or secrets: callers must not pass them. */
#ifndef FG_LOG_H
#define FG_LOG_H

#include <stdio.h>

enum fg_log_level { FG_LOG_ERROR = 0, FG_LOG_WARN = 1, FG_LOG_INFO = 2, FG_LOG_DEBUG = 3 };

/* "error", "warn", "info", "debug" -> level; -1 when unknown. */
int fg_log_level_parse(const char *s);
const char *fg_log_level_name(enum fg_log_level l);

void fg_log_set_level(enum fg_log_level l);
/* Sends lines to f (not closed by the logger); NULL means standard error. */
void fg_log_set_file(FILE *f);
int fg_log_enabled(enum fg_log_level l);

/* fg_log(FG_LOG_INFO, "daemon-start", "domains", "a.test", "store", "sqlite", NULL):
 * key/value string pairs terminated by NULL; a NULL value is written as empty. */
void fg_log(enum fg_log_level l, const char *event, ...) __attribute__((sentinel));

/* Appends one key=value pair to a line under construction, quoting as needed. Exposed
 * for tests and for callers that build lines themselves. */
struct fg_buf;
void fg_log_append_pair(struct fg_buf *b, const char *key, const char *value);

#endif
