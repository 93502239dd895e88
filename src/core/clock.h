/* clock.h - wall-clock helpers: seconds since the epoch and RFC 3339 UTC text. */
#ifndef FG_CLOCK_H
#define FG_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t fg_time_now(void);      /* seconds since the epoch, UTC */
uint64_t fg_time_mono_ms(void); /* monotonic milliseconds, for intervals */
/* Writes "2026-11-26T12:00:00Z"; buf needs 21 bytes. Returns buf. */
char *fg_time_rfc3339(int64_t t, char *buf, size_t len);
/* Parses RFC 3339 (Z or +hh:mm, optional fraction) or a date "2026-11-26"; 0 or FG_EINVAL. */
int fg_time_parse(const char *s, int64_t *out);

#endif
