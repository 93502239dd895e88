/* dns.h - where to connect for an outbound s2s stream (SPEC section 3 "Outbound routing"):
 * XEP-0368 SRV, A/AAAA and its fallback, proxy_fqdn hosts; asynchronous (libunbound on a
 * libuv loop). Opens no connection; SRV parsing, ordering and host:port are pure. */
#ifndef FG_DNS_H
#define FG_DNS_H

/* Errors: int return, >= 0 ok, negative FG_E* code; sentences for people go to an err
 * buffer or to the done callback's error. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FG_DNS_NAME_MAX 253     /* octets of a host name in text, without trailing dot */
#define FG_DNS_S2S_PORT 5269    /* RFC 6120 fallback port */
#define FG_DNS_TIMEOUT_MS 10000 /* default bound on each round of queries */
#define FG_DNS_MAX_SRV 32       /* SRV records used per service; more are ignored */
#define FG_DNS_MAX_ADDRS 16     /* addresses used per host and address family */
#define FG_DNS_IP_MAX 46        /* INET6_ADDRSTRLEN */

struct fg_dns;

/* One address to connect to, numeric, for fg_conn_connect. */
struct fg_dns_addr {
    int family; /* AF_INET6 or AF_INET */
    char ip[FG_DNS_IP_MAX];
};

/* One place to try, in order: its host's addresses are IPv6 first, then IPv4. */
struct fg_dns_target {
    char *host; /* SRV target, fallback domain or proxy host; lowercase */
    uint16_t port;
    bool direct_tls; /* from _xmpps-server: TLS at once (XEP-0368); else STARTTLS */
    size_t naddrs;   /* >= 1 */
    struct fg_dns_addr *addrs;
};

enum fg_dns_source {
    FG_DNS_SRC_SRV = 0,      /* SRV records */
    FG_DNS_SRC_FALLBACK = 1, /* no SRV records: the domain's A/AAAA on 5269 */
    FG_DNS_SRC_HOST = 2,     /* fg_dns_resolve_host (proxy_fqdn) */
};

/* The answer: targets in the order to try them. Targets whose addresses were not found
 * (none exist, or none came in time) are left out, so n >= 1. */
struct fg_dns_targets {
    char *name; /* the domain or host that was asked for */
    enum fg_dns_source source;
    size_t n;
    struct fg_dns_target *v;
};

/* Called once per lookup from the loop (never from inside an fg_dns_* call), with either
 * t (borrowed: valid during the call; fg_dns_targets_copy keeps it) or error, a sentence
 * for people: "no SRV or address records for b.test", "DNS timeout for b.test". The
 * callback may call any fg_dns_* function, fg_dns_free included. */
typedef void (*fg_dns_done_fn)(void *ud, const struct fg_dns_targets *t, const char *error);

/* resolver: "" or NULL = the system's (/etc/resolv.conf and /etc/hosts); otherwise one or
 * more "IP[@PORT]" separated by commas or spaces ([dns] resolver, e.g. "127.0.0.1@5353"),
 * to which every query is forwarded, and libunbound's built-in empty zone for "test." is
 * made transparent. Either way resolvers on loopback addresses may be queried (a local
 * unbound, systemd-resolved's 127.0.0.53). Returns NULL with a sentence in err when the
 * resolver setting is malformed or libunbound fails. */
struct fg_dns *fg_dns_new(uv_loop_t *loop, const char *resolver, char *err, size_t errlen);

/* Cancels every pending lookup (no callback runs) and frees the resolver; the memory is
 * released from the loop, so let it run once more. */
void fg_dns_free(struct fg_dns *dns);

/* Bound on each round of queries (SRV, then addresses): ms > 0; default FG_DNS_TIMEOUT_MS.
 * Applies to lookups started afterwards. */
void fg_dns_set_timeout(struct fg_dns *dns, unsigned ms);

/* Random source for the RFC 2782 weights (tests); NULL = the built-in one. */
typedef uint32_t (*fg_dns_rand_fn)(void *ctx);
void fg_dns_set_random(struct fg_dns *dns, fg_dns_rand_fn rnd, void *ctx);

/* Where the XMPP server of domain (an A-label) listens for s2s: _xmpps-server._tcp and
 * _xmpp-server._tcp SRV in parallel, merged by fg_dns_srv_order, then the AAAA and A of
 * every target; with no SRV records, the domain's own AAAA/A on 5269 (STARTTLS). A lone
 * "." target means no service: an error, without fallback. Returns a lookup id (> 0) for
 * fg_dns_cancel, or FG_EINVAL when domain is not a host name (done is not called). */
int fg_dns_resolve_xmpp_server(struct fg_dns *dns, const char *domain, fg_dns_done_fn done,
                               void *ud);

/* The AAAA and A of host (proxy_fqdn) with port, one target tagged STARTTLS (a
 * proxy_fqdn names a plain s2s port). A numeric IPv4 or IPv6 host is answered as it is,
 * without a query. Returns a lookup id (> 0) or FG_EINVAL. */
int fg_dns_resolve_host(struct fg_dns *dns, const char *host, uint16_t port, fg_dns_done_fn done,
                        void *ud);

/* Forgets a pending lookup: its callback will not run. Unknown or finished ids are
 * ignored, so an owner may cancel whatever id it still holds. */
void fg_dns_cancel(struct fg_dns *dns, int id);

/* Lookups started and not yet delivered or cancelled. */
size_t fg_dns_pending(const struct fg_dns *dns);

struct fg_dns_targets *fg_dns_targets_copy(const struct fg_dns_targets *t);
void fg_dns_targets_free(struct fg_dns_targets *t);
/* "xmpp1.b.test:5269 starttls [::1 127.0.0.2], tls.b.test:5270 direct-tls [127.0.0.4]"
 * for logs and tests; truncated to outlen. */
void fg_dns_targets_format(const struct fg_dns_targets *t, char *out, size_t outlen);

/* --- pure parts --- */

/* One SRV record. target is lowercase text without the trailing dot; "." is the root. */
struct fg_dns_srv {
    char target[FG_DNS_NAME_MAX + 1];
    uint16_t priority;
    uint16_t weight;
    uint16_t port;
    bool direct_tls; /* an _xmpps-server record */
};

/* Parses SRV rdata in wire form (RFC 2782: priority, weight, port, target as uncompressed
 * labels, as libunbound hands it over). Refuses truncated or trailing data, compression,
 * labels over 63 octets, names over 253, characters outside letters, digits, '-' and '_',
 * and port 0 for a real target. Returns 0 or FG_EINVAL. */
int fg_dns_srv_parse(const unsigned char *rdata, size_t len, bool direct_tls,
                     struct fg_dns_srv *out);

enum fg_dns_srv_verdict {
    FG_DNS_SRV_RECORDS = 0,     /* *n >= 1 targets, in the order to try them */
    FG_DNS_SRV_NONE = 1,        /* no records: fall back to A/AAAA */
    FG_DNS_SRV_UNAVAILABLE = 2, /* only "." in a service, no other target: no fallback */
};

/* Orders the records of both services in place as one set (XEP-0368): a service whose
 * records are all "." is unavailable; "." records and duplicates (same target, port and
 * service) are dropped; then ascending priority, and within a priority RFC 2782's
 * weighted selection (weight-0 records first in each round, a uniform number in
 * [0, sum of weights] from rnd, the first record whose running sum reaches it). rnd NULL =
 * the built-in random source. *n is updated. */
enum fg_dns_srv_verdict fg_dns_srv_order(struct fg_dns_srv *v, size_t *n, fg_dns_rand_fn rnd,
                                         void *rctx);

/* Splits "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address (as in
 * proxy_fqdn) into host (lowercase, no trailing dot; brackets removed) and port
 * (default_port when absent). Returns 0, or FG_EINVAL with a sentence in err. */
int fg_dns_parse_hostport(const char *s, uint16_t default_port, char *host, size_t hostlen,
                          uint16_t *port, char *err, size_t errlen);

#endif
