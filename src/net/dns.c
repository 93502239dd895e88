/* dns.c - asynchronous s2s name resolution with libunbound in threaded mode (answers arrive
 * on ub_fd, which a uv_poll_t watches), and the pure SRV and host:port parsers. Knows
 * nothing of connections: it hands ordered targets with numeric addresses to its owner. */
#include "net/dns.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unbound.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

#define RR_A 1
#define RR_AAAA 28
#define RR_SRV 33
#define CLASS_IN 1
#define RCODE_NOERROR 0
#define RCODE_NXDOMAIN 3
#define LABEL_MAX 63
#define HOSTS_IN_MESSAGE 4 /* target names listed in an error before "..." */

enum qkind { Q_SRV_TLS, Q_SRV, Q_AAAA, Q_A };
enum qstate { QS_UNUSED, QS_PENDING, QS_ANSWERED, QS_FAILED, QS_TIMEOUT };
/* The worst trouble seen in a lookup, reported when it ends without an address. */
enum problem { PB_NONE = 0, PB_FAILED = 1, PB_TIMEOUT = 2 };
enum phase { PH_SRV, PH_ADDR, PH_DONE };

struct op;

/* One ub_resolve_async in flight; its address is the libunbound callback argument, so
 * a round's array never moves while a query of it is pending. */
struct query {
    struct op *op;
    enum qkind kind;
    size_t host; /* index in op->hosts for Q_AAAA / Q_A */
    int ub_id;
    enum qstate state;
};

/* A distinct host name whose addresses are looked up. */
struct host {
    char *name;
    struct fg_dns_addr *v6, *v4; /* FG_DNS_MAX_ADDRS each, allocated on first answer */
    size_t n6, n4;
};

/* One lookup: rounds of parallel queries (SRV, then addresses), each bounded by timer,
 * which also delivers the outcome from the loop once the lookup is done. */
struct op {
    struct fg_dns *dns;
    struct op *prev, *next;
    int id;
    enum phase phase;
    enum fg_dns_source source;
    char name[FG_DNS_NAME_MAX + 1];
    uint16_t port; /* fallback and host lookups */
    fg_dns_done_fn done;
    void *ud;
    uv_timer_t timer;
    struct query *q;
    size_t nq, npending;
    struct fg_dns_srv *srv; /* 2 * FG_DNS_MAX_SRV slots */
    size_t nsrv, nsrv_tls, nsrv_plain;
    struct host *hosts;
    size_t nhosts;
    enum problem problem;
    char detail[64];
    struct fg_dns_targets *result;
    char error[640]; /* room for the longest explain() sentence */
};

struct fg_dns {
    uv_loop_t *loop;
    struct ub_ctx *ub;
    uv_poll_t poll;
    bool polling;
    unsigned timeout_ms;
    int last_id;
    struct op *ops;
    size_t nops;
    fg_dns_rand_fn rnd;
    void *rctx;
};

static void round_done(struct op *op);

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ pure parts */

static bool is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_host_char(int c)
{
    return is_alnum(c) || c == '-' || c == '_';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Strict decimal port 1..65535 (no sign, no spaces, at most 5 digits). */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* A host name as DNS carries it: labels of 1..63 letters, digits, '-' or '_', at most 253
 * octets, one trailing dot allowed. Copies it lowercase without the dot into out. */
static bool check_name(const char *in, size_t n, char *out, size_t outlen)
{
    if (!in)
        return false;
    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > FG_DNS_NAME_MAX || n >= outlen)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (is_host_char((unsigned char)c)) {
            if (++label > LABEL_MAX)
                return false;
        } else {
            return false;
        }
        out[i] = lower(c);
    }
    if (label == 0)
        return false;
    out[n] = '\0';
    return true;
}

int fg_dns_srv_parse(const unsigned char *p, size_t len, bool direct_tls, struct fg_dns_srv *out)
{
    if (!p || !out || len < 7)
        return FG_EINVAL;
    memset(out, 0, sizeof *out);
    out->priority = (uint16_t)(p[0] << 8 | p[1]);
    out->weight = (uint16_t)(p[2] << 8 | p[3]);
    out->port = (uint16_t)(p[4] << 8 | p[5]);
    out->direct_tls = direct_tls;
    size_t i = 6, o = 0;
    for (;;) {
        if (i >= len)
            return FG_EINVAL;
        size_t l = p[i++];
        if (l == 0)
            break;
        /* 0xC0 and up is a compression pointer, 0x40..0xBF an extended label type:
         * neither belongs in rdata that libunbound has already decompressed */
        if (l > LABEL_MAX || l > len - i)
            return FG_EINVAL;
        if (o + (o ? 1 : 0) + l > FG_DNS_NAME_MAX)
            return FG_EINVAL;
        if (o)
            out->target[o++] = '.';
        for (size_t j = 0; j < l; j++) {
            unsigned char c = p[i + j];
            if (!is_host_char(c))
                return FG_EINVAL;
            out->target[o++] = lower((char)c);
        }
        i += l;
    }
    if (i != len)
        return FG_EINVAL;
    if (o == 0) {
        out->target[0] = '.';
        out->target[1] = '\0';
        return 0;
    }
    out->target[o] = '\0';
    if (out->port == 0)
        return FG_EINVAL;
    return 0;
}

static bool is_root(const struct fg_dns_srv *r)
{
    return r->target[0] == '.' && r->target[1] == '\0';
}

/* xorshift64*, seeded from the system's random source: weights spread load, they are
 * not a secret, so a fast generator is enough. */
static uint32_t builtin_random(void *ctx)
{
    static uint64_t s;
    (void)ctx;
    if (s == 0) {
        uint64_t seed = 0;
        if (uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL) != 0 || seed == 0)
            seed = uv_hrtime() ^ 0x9E3779B97F4A7C15ull;
        s = seed ? seed : 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return (uint32_t)((s * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Moves g[from] to g[to] (to <= from), shifting the records between one place up, so
 * that the others keep their relative order. */
static void move_to(struct fg_dns_srv *g, size_t from, size_t to)
{
    if (from == to)
        return;
    struct fg_dns_srv tmp = g[from];
    memmove(&g[to + 1], &g[to], (from - to) * sizeof *g);
    g[to] = tmp;
}

/* RFC 2782 section "Usage rules": the records of one priority in selection order. */
static void order_by_weight(struct fg_dns_srv *g, size_t n, fg_dns_rand_fn rnd, void *rctx)
{
    for (size_t done = 0; done + 1 < n; done++) {
        /* weight-0 records go to the beginning of the unordered ones */
        size_t zeros = done;
        for (size_t i = done; i < n; i++)
            if (g[i].weight == 0)
                move_to(g, i, zeros++);
        uint32_t sum = 0;
        for (size_t i = done; i < n; i++)
            sum += g[i].weight;
        /* uniform in [0, sum]; the modulo bias is below 2^-10 for any sum of 64 weights */
        uint32_t r = sum ? rnd(rctx) % (sum + 1) : 0;
        uint32_t running = 0;
        size_t pick = done;
        for (size_t i = done; i < n; i++) {
            running += g[i].weight;
            if (running >= r) {
                pick = i;
                break;
            }
        }
        move_to(g, pick, done);
    }
}

static bool same_record(const struct fg_dns_srv *a, const struct fg_dns_srv *b)
{
    return a->port == b->port && a->direct_tls == b->direct_tls &&
           strcmp(a->target, b->target) == 0;
}

enum fg_dns_srv_verdict fg_dns_srv_order(struct fg_dns_srv *v, size_t *n, fg_dns_rand_fn rnd,
                                         void *rctx)
{
    if (!rnd)
        rnd = builtin_random;
    size_t count = v ? *n : 0;
    /* RFC 2782: a "." target says the service is decidedly not available (RFC 6120: when
     * it is the only record); XEP-0368 applies that per service (direct TLS or STARTTLS).
     * A service whose records are all "." is taken the same way. */
    bool unavailable = false;
    for (int tls = 0; tls <= 1; tls++) {
        size_t in_set = 0, roots = 0;
        for (size_t i = 0; i < count; i++) {
            if (v[i].direct_tls != (tls == 1))
                continue;
            in_set++;
            if (is_root(&v[i]))
                roots++;
        }
        if (in_set > 0 && roots == in_set)
            unavailable = true;
    }
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        if (is_root(&v[i]))
            continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = same_record(&v[j], &v[i]);
        if (dup)
            continue;
        if (k != i)
            v[k] = v[i];
        k++;
    }
    *n = k;
    if (k == 0)
        return unavailable ? FG_DNS_SRV_UNAVAILABLE : FG_DNS_SRV_NONE;
    /* stable insertion sort by priority (at most 2 * FG_DNS_MAX_SRV records) */
    for (size_t i = 1; i < k; i++) {
        size_t j = i;
        while (j > 0 && v[j - 1].priority > v[i].priority)
            j--;
        move_to(v, i, j);
    }
    for (size_t start = 0; start < k;) {
        size_t end = start + 1;
        while (end < k && v[end].priority == v[start].priority)
            end++;
        order_by_weight(v + start, end - start, rnd, rctx);
        start = end;
    }
    return FG_DNS_SRV_RECORDS;
}

static bool is_ip(const char *s, int *family)
{
    unsigned char bin[16];
    if (inet_pton(AF_INET, s, bin) == 1) {
        if (family)
            *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, bin) == 1) {
        if (family)
            *family = AF_INET6;
        return true;
    }
    return false;
}

int fg_dns_parse_hostport(const char *s, uint16_t default_port, char *host, size_t hostlen,
                          uint16_t *port, char *err, size_t errlen)
{
    if (host && hostlen)
        host[0] = '\0';
    if (!s || !s[0]) {
        set_err(err, errlen, "empty host: expected host or host:port");
        return FG_EINVAL;
    }
    if (!host || !port) {
        set_err(err, errlen, "no room for the host");
        return FG_EINVAL;
    }
    size_t len = strlen(s);
    const char *h = s, *p = NULL;
    size_t hl = len;
    bool bracketed = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) {
            set_err(err, errlen, "invalid host '%s': '[' without ']'", s);
            return FG_EINVAL;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        bracketed = true;
        if (close[1] == ':')
            p = close + 2;
        else if (close[1] != '\0') {
            set_err(err, errlen, "invalid host '%s': expected [address]:port", s);
            return FG_EINVAL;
        }
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) {
            hl = len; /* a bare IPv6 address: it cannot carry a port */
        } else if (colon) {
            hl = (size_t)(colon - s);
            p = colon + 1;
        }
    }
    uint16_t pv = default_port;
    if (p && !parse_port(p, strlen(p), &pv)) {
        set_err(err, errlen, "invalid port in '%s': expected a number from 1 to 65535", s);
        return FG_EINVAL;
    }
    if (hl == 0) {
        set_err(err, errlen, "invalid host '%s': the host is empty", s);
        return FG_EINVAL;
    }
    if (hl >= hostlen || hl > FG_DNS_NAME_MAX + 1) {
        set_err(err, errlen, "invalid host '%s': longer than %d octets", s, FG_DNS_NAME_MAX);
        return FG_EINVAL;
    }
    char tmp[FG_DNS_NAME_MAX + 2];
    memcpy(tmp, h, hl);
    tmp[hl] = '\0';
    int family = 0;
    if (is_ip(tmp, &family)) {
        if (bracketed && family != AF_INET6) {
            set_err(err, errlen, "invalid host '%s': brackets are for IPv6 addresses", s);
            return FG_EINVAL;
        }
        for (size_t i = 0; i <= hl; i++)
            host[i] = lower(tmp[i]);
    } else if (bracketed || strchr(tmp, ':')) {
        set_err(err, errlen, "invalid host '%s': not an IPv6 address", s);
        return FG_EINVAL;
    } else if (!check_name(tmp, hl, host, hostlen)) {
        set_err(err, errlen,
                "invalid host '%s': expected a host name (letters, digits, '-', dots) or an "
                "IP address",
                s);
        return FG_EINVAL;
    }
    *port = pv;
    return 0;
}

/* ------------------------------------------------------------------ results */

static void target_clear(struct fg_dns_target *t)
{
    fg_free(t->host);
    fg_free(t->addrs);
}

void fg_dns_targets_free(struct fg_dns_targets *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        target_clear(&t->v[i]);
    fg_free(t->v);
    fg_free(t->name);
    fg_free(t);
}

struct fg_dns_targets *fg_dns_targets_copy(const struct fg_dns_targets *t)
{
    if (!t)
        return NULL;
    struct fg_dns_targets *c = fg_calloc(1, sizeof *c);
    c->name = fg_strdup(t->name ? t->name : "");
    c->source = t->source;
    c->n = t->n;
    c->v = fg_calloc(t->n ? t->n : 1, sizeof *c->v);
    for (size_t i = 0; i < t->n; i++) {
        const struct fg_dns_target *s = &t->v[i];
        struct fg_dns_target *d = &c->v[i];
        d->host = fg_strdup(s->host ? s->host : "");
        d->port = s->port;
        d->direct_tls = s->direct_tls;
        d->naddrs = s->naddrs;
        d->addrs = fg_calloc(s->naddrs ? s->naddrs : 1, sizeof *d->addrs);
        if (s->naddrs)
            memcpy(d->addrs, s->addrs, s->naddrs * sizeof *d->addrs);
    }
    return c;
}

/* Appends to out[*used..outlen), keeping it terminated; silently truncates. */
__attribute__((format(printf, 4, 5))) static void append(char *out, size_t outlen, size_t *used,
                                                         const char *fmt, ...)
{
    if (*used + 1 >= outlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *used, outlen - *used, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *used += (size_t)n;
    if (*used >= outlen)
        *used = outlen - 1;
}

void fg_dns_targets_format(const struct fg_dns_targets *t, char *out, size_t outlen)
{
    if (!out || !outlen)
        return;
    out[0] = '\0';
    if (!t)
        return;
    size_t used = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct fg_dns_target *x = &t->v[i];
        append(out, outlen, &used, "%s%s:%u %s [", i ? ", " : "", x->host, (unsigned)x->port,
               x->direct_tls ? "direct-tls" : "starttls");
        for (size_t j = 0; j < x->naddrs; j++)
            append(out, outlen, &used, "%s%s", j ? " " : "", x->addrs[j].ip);
        append(out, outlen, &used, "]");
    }
}

/* ------------------------------------------------------------------ lookups */

static const char *rcode_name(int rcode)
{
    switch (rcode) {
    case 1:
        return "the resolver answered FORMERR";
    case 2:
        return "the resolver answered SERVFAIL";
    case 4:
        return "the resolver answered NOTIMP";
    case 5:
        return "the resolver answered REFUSED";
    default:
        return "the resolver answered an error";
    }
}

static void note_problem(struct op *op, enum problem pb, const char *detail)
{
    if (pb <= op->problem)
        return;
    op->problem = pb;
    snprintf(op->detail, sizeof op->detail, "%s", detail ? detail : "");
}

static void add_addr(struct host *h, int family, const unsigned char *bin)
{
    struct fg_dns_addr **v = family == AF_INET6 ? &h->v6 : &h->v4;
    size_t *n = family == AF_INET6 ? &h->n6 : &h->n4;
    if (*n >= FG_DNS_MAX_ADDRS)
        return;
    if (!*v)
        *v = fg_calloc(FG_DNS_MAX_ADDRS, sizeof **v);
    struct fg_dns_addr *a = &(*v)[*n];
    a->family = family;
    if (!inet_ntop(family, bin, a->ip, sizeof a->ip))
        return;
    (*n)++;
}

static void collect(struct op *op, const struct query *q, const struct ub_result *res)
{
    for (size_t i = 0; res->data && res->data[i]; i++) {
        size_t len = res->len[i] < 0 ? 0 : (size_t)res->len[i];
        const unsigned char *d = (const unsigned char *)res->data[i];
        if (q->kind == Q_SRV_TLS || q->kind == Q_SRV) {
            bool tls = q->kind == Q_SRV_TLS;
            size_t *count = tls ? &op->nsrv_tls : &op->nsrv_plain;
            if (*count >= FG_DNS_MAX_SRV)
                break;
            if (fg_dns_srv_parse(d, len, tls, &op->srv[op->nsrv]) == 0) {
                op->nsrv++;
                (*count)++;
            }
        } else if (q->kind == Q_AAAA && len == 16) {
            add_addr(&op->hosts[q->host], AF_INET6, d);
        } else if (q->kind == Q_A && len == 4) {
            add_addr(&op->hosts[q->host], AF_INET, d);
        }
    }
}

/* libunbound's callback, from ub_process in on_poll. */
static void on_answer(void *arg, int err, struct ub_result *res)
{
    struct query *q = arg;
    struct op *op = q->op;
    if (err != 0) {
        q->state = QS_FAILED;
        note_problem(op, PB_FAILED, ub_strerror(err));
    } else if (!res) {
        q->state = QS_FAILED;
        note_problem(op, PB_FAILED, "no answer");
    } else if (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN) {
        q->state = QS_FAILED;
        note_problem(op, PB_FAILED, rcode_name(res->rcode));
    } else {
        q->state = QS_ANSWERED;
        if (res->havedata)
            collect(op, q, res);
    }
    if (res)
        ub_resolve_free(res);
    if (--op->npending == 0)
        round_done(op);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct fg_dns *dns = h->data;
    (void)events;
    int rc = ub_process(dns->ub);
    if (rc != 0 || status < 0) {
        /* the pipe from libunbound's thread broke: pending lookups end by their timers */
        fg_log(FG_LOG_ERROR, "dns-error", "reason", rc ? ub_strerror(rc) : uv_strerror(status),
               NULL);
        uv_poll_stop(&dns->poll);
        dns->polling = false;
    }
}

static void submit(struct op *op, struct query *q, enum qkind kind, size_t host, const char *qname)
{
    static const int types[] = {RR_SRV, RR_SRV, RR_AAAA, RR_A};
    q->op = op;
    q->kind = kind;
    q->host = host;
    int rc = ub_resolve_async(op->dns->ub, qname, types[kind], CLASS_IN, q, on_answer, &q->ub_id);
    if (rc != 0) {
        q->state = QS_FAILED;
        note_problem(op, PB_FAILED, ub_strerror(rc));
        return;
    }
    q->state = QS_PENDING;
    op->npending++;
}

static void cancel_queries(struct op *op, enum qstate as)
{
    for (size_t i = 0; i < op->nq; i++) {
        struct query *q = &op->q[i];
        if (q->state != QS_PENDING)
            continue;
        /* in threaded mode a cancelled query's callback never runs, even when its answer
         * is already queued on the pipe */
        ub_cancel(op->dns->ub, q->ub_id);
        q->state = as;
    }
    op->npending = 0;
}

static void on_timer(uv_timer_t *t);

/* Starts the timer of a round whose queries were submitted, or ends it at once when
 * none could be. */
static void start_round(struct op *op)
{
    if (op->npending == 0) {
        round_done(op);
        return;
    }
    uv_timer_start(&op->timer, on_timer, op->dns->timeout_ms, 0);
}

/* The lookup has its outcome (op->result or op->error): the timer delivers it from the
 * loop, so that no callback runs inside ub_process or inside an fg_dns_* call. */
static void finish(struct op *op)
{
    op->phase = PH_DONE;
    uv_timer_start(&op->timer, on_timer, 0, 0);
}

static const struct host *find_host(const struct op *op, const char *name)
{
    for (size_t i = 0; i < op->nhosts; i++)
        if (strcmp(op->hosts[i].name, name) == 0)
            return &op->hosts[i];
    return NULL;
}

static void add_host(struct op *op, const char *name)
{
    if (find_host(op, name))
        return;
    op->hosts = fg_realloc(op->hosts, (op->nhosts + 1) * sizeof *op->hosts);
    struct host *h = &op->hosts[op->nhosts];
    memset(h, 0, sizeof *h);
    h->name = fg_strdup(name);
    op->nhosts++;
}

static void start_addresses(struct op *op)
{
    op->phase = PH_ADDR;
    op->nq = 2 * op->nhosts;
    op->q = fg_calloc(op->nq ? op->nq : 1, sizeof *op->q);
    for (size_t i = 0; i < op->nhosts; i++) {
        submit(op, &op->q[2 * i], Q_AAAA, i, op->hosts[i].name);
        submit(op, &op->q[2 * i + 1], Q_A, i, op->hosts[i].name);
    }
    start_round(op);
}

static void fill_target(struct fg_dns_target *t, const struct host *h, uint16_t port,
                        bool direct_tls)
{
    t->host = fg_strdup(h->name);
    t->port = port;
    t->direct_tls = direct_tls;
    t->naddrs = h->n6 + h->n4;
    t->addrs = fg_calloc(t->naddrs, sizeof *t->addrs);
    if (h->n6)
        memcpy(t->addrs, h->v6, h->n6 * sizeof *t->addrs);
    if (h->n4)
        memcpy(t->addrs + h->n6, h->v4, h->n4 * sizeof *t->addrs);
}

static void list_hosts(const struct op *op, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < op->nhosts; i++) {
        if (i == HOSTS_IN_MESSAGE) {
            append(out, outlen, &used, ", ...");
            break;
        }
        append(out, outlen, &used, "%s%s", i ? ", " : "", op->hosts[i].name);
    }
}

/* Why a lookup found no address, in a sentence for people. */
static void explain(struct op *op)
{
    char hosts[200];
    list_hosts(op, hosts, sizeof hosts);
    const char *name = op->name;
    if (op->problem == PB_TIMEOUT) {
        if (op->source == FG_DNS_SRC_SRV)
            snprintf(op->error, sizeof op->error, "DNS timeout for %s (addresses of %s)", name,
                     hosts);
        else
            snprintf(op->error, sizeof op->error, "DNS timeout for %s", name);
    } else if (op->problem == PB_FAILED) {
        if (op->source == FG_DNS_SRC_SRV)
            snprintf(op->error, sizeof op->error, "DNS lookup for %s failed (addresses of %s: %s)",
                     name, hosts, op->detail);
        else
            snprintf(op->error, sizeof op->error, "DNS lookup for %s failed (%s)", name,
                     op->detail);
    } else if (op->source == FG_DNS_SRC_SRV) {
        snprintf(op->error, sizeof op->error,
                 "no address records for %s, named by the SRV records of %s", hosts, name);
    } else if (op->source == FG_DNS_SRC_FALLBACK) {
        snprintf(op->error, sizeof op->error, "no SRV or address records for %s", name);
    } else {
        snprintf(op->error, sizeof op->error, "no address records for %s", name);
    }
}

static void build_result(struct op *op)
{
    struct fg_dns_targets *t = fg_calloc(1, sizeof *t);
    t->name = fg_strdup(op->name);
    t->source = op->source;
    if (op->source == FG_DNS_SRC_SRV) {
        t->v = fg_calloc(op->nsrv ? op->nsrv : 1, sizeof *t->v);
        for (size_t i = 0; i < op->nsrv; i++) {
            const struct fg_dns_srv *r = &op->srv[i];
            const struct host *h = find_host(op, r->target);
            if (!h || h->n6 + h->n4 == 0)
                continue;
            fill_target(&t->v[t->n++], h, r->port, r->direct_tls);
        }
    } else {
        t->v = fg_calloc(1, sizeof *t->v);
        if (op->nhosts && op->hosts[0].n6 + op->hosts[0].n4)
            fill_target(&t->v[t->n++], &op->hosts[0], op->port, false);
    }
    if (t->n == 0) {
        fg_dns_targets_free(t);
        explain(op);
        return;
    }
    op->result = t;
}

static void round_done(struct op *op)
{
    uv_timer_stop(&op->timer);
    fg_free(op->q);
    op->q = NULL;
    op->nq = 0;
    if (op->phase == PH_SRV) {
        enum fg_dns_srv_verdict v =
            fg_dns_srv_order(op->srv, &op->nsrv, op->dns->rnd, op->dns->rctx);
        if (v == FG_DNS_SRV_UNAVAILABLE) {
            snprintf(op->error, sizeof op->error,
                     "%s offers no XMPP server-to-server service (its SRV record has the "
                     "target \".\")",
                     op->name);
            finish(op);
            return;
        }
        if (v == FG_DNS_SRV_NONE) {
            /* RFC 6120 section 3.2.2; a failed or timed-out SRV round falls back too, and
             * its trouble explains the outcome if the fallback finds nothing either */
            op->source = FG_DNS_SRC_FALLBACK;
            op->port = FG_DNS_S2S_PORT;
            add_host(op, op->name);
        } else {
            op->source = FG_DNS_SRC_SRV;
            op->problem = PB_NONE; /* records were found: earlier trouble does not matter */
            op->detail[0] = '\0';
            for (size_t i = 0; i < op->nsrv; i++)
                add_host(op, op->srv[i].target);
        }
        start_addresses(op);
        return;
    }
    build_result(op);
    finish(op);
}

static void unlink_op(struct op *op)
{
    struct fg_dns *dns = op->dns;
    if (op->prev)
        op->prev->next = op->next;
    else
        dns->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
    dns->nops--;
}

static void on_op_closed(uv_handle_t *h)
{
    fg_free(h->data);
}

/* Frees everything of an unlinked op without pending queries; the op itself goes when
 * its timer is closed. */
static void destroy_op(struct op *op)
{
    for (size_t i = 0; i < op->nhosts; i++) {
        fg_free(op->hosts[i].name);
        fg_free(op->hosts[i].v6);
        fg_free(op->hosts[i].v4);
    }
    fg_free(op->hosts);
    fg_free(op->srv);
    fg_free(op->q);
    fg_dns_targets_free(op->result);
    op->hosts = NULL;
    op->srv = NULL;
    op->q = NULL;
    op->result = NULL;
    uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

static void deliver(struct op *op)
{
    unlink_op(op);
    if (op->result)
        op->done(op->ud, op->result, NULL);
    else
        op->done(op->ud, NULL, op->error[0] ? op->error : "DNS lookup failed");
    /* the callback may have freed the resolver: from here on, only op itself */
    destroy_op(op);
}

static void on_timer(uv_timer_t *t)
{
    struct op *op = t->data;
    if (op->phase == PH_DONE) {
        deliver(op);
        return;
    }
    cancel_queries(op, QS_TIMEOUT);
    note_problem(op, PB_TIMEOUT, "timeout");
    round_done(op);
}

static struct op *op_new(struct fg_dns *dns, const char *name, fg_dns_done_fn done, void *ud)
{
    struct op *op = fg_calloc(1, sizeof *op);
    op->dns = dns;
    snprintf(op->name, sizeof op->name, "%s", name);
    op->done = done;
    op->ud = ud;
    uv_timer_init(dns->loop, &op->timer);
    op->timer.data = op;
    /* ids stay positive and are not reused while the old holder could still hold one */
    do {
        dns->last_id = dns->last_id >= 0x7fffffff ? 1 : dns->last_id + 1;
        op->id = dns->last_id;
        for (struct op *o = dns->ops; o; o = o->next)
            if (o->id == op->id) {
                op->id = 0;
                break;
            }
    } while (op->id == 0);
    op->next = dns->ops;
    if (dns->ops)
        dns->ops->prev = op;
    dns->ops = op;
    dns->nops++;
    return op;
}

int fg_dns_resolve_xmpp_server(struct fg_dns *dns, const char *domain, fg_dns_done_fn done,
                               void *ud)
{
    char name[FG_DNS_NAME_MAX + 1];
    if (!dns || !done || !domain || !check_name(domain, strlen(domain), name, sizeof name))
        return FG_EINVAL;
    struct op *op = op_new(dns, name, done, ud);
    op->phase = PH_SRV;
    op->source = FG_DNS_SRC_SRV;
    op->port = FG_DNS_S2S_PORT;
    op->srv = fg_calloc(2 * FG_DNS_MAX_SRV, sizeof *op->srv);
    op->nq = 2;
    op->q = fg_calloc(op->nq, sizeof *op->q);
    char qname[FG_DNS_NAME_MAX + 32];
    snprintf(qname, sizeof qname, "_xmpps-server._tcp.%s", name);
    submit(op, &op->q[0], Q_SRV_TLS, 0, qname);
    snprintf(qname, sizeof qname, "_xmpp-server._tcp.%s", name);
    submit(op, &op->q[1], Q_SRV, 0, qname);
    int id = op->id;
    start_round(op);
    return id;
}

int fg_dns_resolve_host(struct fg_dns *dns, const char *host, uint16_t port, fg_dns_done_fn done,
                        void *ud)
{
    if (!dns || !done || !host || port == 0)
        return FG_EINVAL;
    int family = 0;
    if (is_ip(host, &family)) {
        struct op *op = op_new(dns, host, done, ud);
        op->source = FG_DNS_SRC_HOST;
        op->port = port;
        struct fg_dns_targets *t = fg_calloc(1, sizeof *t);
        t->name = fg_strdup(host);
        t->source = FG_DNS_SRC_HOST;
        t->n = 1;
        t->v = fg_calloc(1, sizeof *t->v);
        t->v[0].host = fg_strdup(host);
        t->v[0].port = port;
        t->v[0].naddrs = 1;
        t->v[0].addrs = fg_calloc(1, sizeof *t->v[0].addrs);
        t->v[0].addrs[0].family = family;
        /* the canonical text form, so "::0001" and "::1" look alike to the caller */
        unsigned char bin[16];
        inet_pton(family, host, bin);
        inet_ntop(family, bin, t->v[0].addrs[0].ip, sizeof t->v[0].addrs[0].ip);
        op->result = t;
        finish(op);
        return op->id;
    }
    char name[FG_DNS_NAME_MAX + 1];
    if (!check_name(host, strlen(host), name, sizeof name))
        return FG_EINVAL;
    struct op *op = op_new(dns, name, done, ud);
    op->source = FG_DNS_SRC_HOST;
    op->port = port;
    add_host(op, name);
    int id = op->id;
    start_addresses(op);
    return id;
}

static void cancel_op(struct op *op)
{
    cancel_queries(op, QS_FAILED);
    unlink_op(op);
    destroy_op(op);
}

void fg_dns_cancel(struct fg_dns *dns, int id)
{
    if (!dns || id <= 0)
        return;
    for (struct op *op = dns->ops; op; op = op->next)
        if (op->id == id) {
            cancel_op(op);
            return;
        }
}

size_t fg_dns_pending(const struct fg_dns *dns)
{
    return dns ? dns->nops : 0;
}

void fg_dns_set_timeout(struct fg_dns *dns, unsigned ms)
{
    if (dns && ms > 0)
        dns->timeout_ms = ms;
}

void fg_dns_set_random(struct fg_dns *dns, fg_dns_rand_fn rnd, void *ctx)
{
    if (!dns)
        return;
    dns->rnd = rnd;
    dns->rctx = ctx;
}

/* "IP" or "IP@PORT", as ub_ctx_set_fwd takes it; checked here for a clearer message. */
static bool valid_forwarder(const char *tok)
{
    const char *at = strchr(tok, '@');
    size_t n = at ? (size_t)(at - tok) : strlen(tok);
    char ip[FG_DNS_IP_MAX];
    if (n == 0 || n >= sizeof ip)
        return false;
    memcpy(ip, tok, n);
    ip[n] = '\0';
    if (!is_ip(ip, NULL))
        return false;
    uint16_t port;
    return !at || parse_port(at + 1, strlen(at + 1), &port);
}

static int set_forwarders(struct ub_ctx *ub, const char *spec, char *err, size_t errlen)
{
    char buf[512];
    if (strlen(spec) >= sizeof buf) {
        set_err(err, errlen, "the [dns] resolver setting is longer than %zu characters",
                sizeof buf - 1);
        return FG_EINVAL;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        int rc = valid_forwarder(tok) ? ub_ctx_set_fwd(ub, tok) : 1;
        if (rc != 0) {
            set_err(err, errlen,
                    "invalid [dns] resolver '%s': expected IP or IP@PORT (for example "
                    "127.0.0.1@5353), several separated by commas",
                    tok);
            return FG_EINVAL;
        }
        count++;
    }
    if (count == 0) {
        set_err(err, errlen, "invalid [dns] resolver '%s': no address", spec);
        return FG_EINVAL;
    }
    return 0;
}

static void on_dns_closed(uv_handle_t *h)
{
    struct fg_dns *dns = h->data;
    ub_ctx_delete(dns->ub);
    fg_free(dns);
}

struct fg_dns *fg_dns_new(uv_loop_t *loop, const char *resolver, char *err, size_t errlen)
{
    if (!loop) {
        set_err(err, errlen, "no event loop for the resolver");
        return NULL;
    }
    struct fg_dns *dns = fg_calloc(1, sizeof *dns);
    dns->loop = loop;
    dns->timeout_ms = FG_DNS_TIMEOUT_MS;
    int rc;
    dns->ub = ub_ctx_create();
    if (!dns->ub) {
        set_err(err, errlen, "cannot create the libunbound resolver");
        goto fail;
    }
    /* a thread, not a forked process: the daemon holds listeners and much memory */
    if ((rc = ub_ctx_async(dns->ub, 1)) != 0)
        goto ub_fail;
    /* Stub resolvers on loopback (a local unbound, systemd-resolved's 127.0.0.53) are the
     * usual upstream in both modes, and libunbound refuses to query loopback by default. */
    if ((rc = ub_ctx_set_option(dns->ub, "do-not-query-localhost:", "no")) != 0)
        goto ub_fail;
    if (resolver && resolver[0]) {
        if (set_forwarders(dns->ub, resolver, err, errlen) != 0)
            goto fail;
        /* libunbound answers "test." from a built-in empty zone; "nodefault" set this way
         * is not honoured, "transparent" is (tests serve their domains under test.) */
        if ((rc = ub_ctx_set_option(dns->ub, "local-zone:", "test. transparent")) != 0)
            goto ub_fail;
    } else {
        if ((rc = ub_ctx_resolvconf(dns->ub, NULL)) != 0)
            fg_log(FG_LOG_WARN, "dns-config", "file", "/etc/resolv.conf", "reason", ub_strerror(rc),
                   "fix", "set [dns] resolver, e.g. 127.0.0.1@53", NULL);
        if ((rc = ub_ctx_hosts(dns->ub, NULL)) != 0)
            fg_log(FG_LOG_WARN, "dns-config", "file", "/etc/hosts", "reason", ub_strerror(rc),
                   NULL);
    }
    int fd = ub_fd(dns->ub);
    if (fd < 0) {
        set_err(err, errlen, "libunbound has no descriptor to watch");
        goto fail;
    }
    if ((rc = uv_poll_init(loop, &dns->poll, fd)) != 0) {
        set_err(err, errlen, "cannot watch the resolver's descriptor: %s", uv_strerror(rc));
        goto fail;
    }
    dns->poll.data = dns;
    if ((rc = uv_poll_start(&dns->poll, UV_READABLE, on_poll)) != 0) {
        set_err(err, errlen, "cannot watch the resolver's descriptor: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&dns->poll, on_dns_closed);
        return NULL;
    }
    dns->polling = true;
    return dns;

ub_fail:
    set_err(err, errlen, "cannot set up the libunbound resolver: %s", ub_strerror(rc));
fail:
    if (dns->ub)
        ub_ctx_delete(dns->ub);
    fg_free(dns);
    return NULL;
}

void fg_dns_free(struct fg_dns *dns)
{
    if (!dns)
        return;
    while (dns->ops)
        cancel_op(dns->ops);
    if (dns->polling)
        uv_poll_stop(&dns->poll);
    dns->polling = false;
    uv_close((uv_handle_t *)&dns->poll, on_dns_closed);
}
