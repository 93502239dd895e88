/* clock.c - wall-clock and monotonic time, RFC 3339 formatting and parsing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "clock.h"
#include "err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t fg_time_now(void)
{
    return (int64_t)time(NULL);
}

uint64_t fg_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *fg_time_rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int fg_time_parse(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p)
        return FG_EINVAL;
    long offset = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p = strptime(p + 1, "%H:%M:%S", &tm);
        if (!p)
            return FG_EINVAL;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9')
                return FG_EINVAL;
            while (*p >= '0' && *p <= '9')
                p++;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int hh, mm, n = 0;
            if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh > 23 || mm > 59)
                return FG_EINVAL;
            offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
            p += 1 + n;
        } else {
            return FG_EINVAL;
        }
    }
    if (*p)
        return FG_EINVAL;
    *out = (int64_t)timegm(&tm) - offset;
    return FG_OK;
}
