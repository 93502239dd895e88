/* stats.h - process-wide counters the event loop bumps and the admin thread reads for
 * /metrics. Relaxed atomics: each number is exact on its own; no two are read as one
 * snapshot. Nothing else lives here. */
#ifndef FG_STATS_H
#define FG_STATS_H

#include <stdatomic.h>

struct fg_stats {
    atomic_ullong c2s_connections;   /* gauge: client connections open */
    atomic_ullong c2s_sessions;      /* gauge: bound client sessions */
    atomic_ullong c2s_logins;        /* counter: successful SASL logins */
    atomic_ullong c2s_auth_failures; /* counter: failed SASL exchanges that count as attempts */
    atomic_ullong stanzas_routed;    /* counter: stanzas from bound clients handed to the router */
};

extern struct fg_stats fg_stats;

static inline void fg_stats_add(atomic_ullong *c, long long d)
{
    atomic_fetch_add_explicit(c, (unsigned long long)d, memory_order_relaxed);
}

static inline unsigned long long fg_stats_get(atomic_ullong *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
