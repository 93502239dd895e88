/* links.c - glue for server-to-server streams: net/conn and net/dns feed xmpp/s2s machines;
 * inbound stanzas go to the IM layer, outbound ones wait in a bounded queue per link until
 * their domain pair is valid. A stream is freed only from its connection's closed callback. */
#include "links.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/dns.h"
#include "net/tls.h"
#include "policy/types.h"
#include "store/store.h"
#include "xmpp/certid.h"
#include "xmpp/dialback.h"
#include "xmpp/s2s.h"

#include <jansson.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#define TICK_MS 1000
#define STATUS_EVERY_MS 2000
#define QUEUE_MAX 256 /* stanzas waiting per outbound link */
#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_MIN_MS 2000
#define BACKOFF_MAX_MS 60000
#define VERIFY_MAX 16 /* pending verifications per verify-only link */

enum kind { K_IN, K_OUT, K_VERIFY };

struct qitem {
    struct fg_xml_node *stanza;
    struct fg_arena *arena;
    char local[FG_DOMAIN_MAX + 1], remote[FG_DOMAIN_MAX + 1];
};

struct pverify {
    char from[FG_DOMAIN_MAX + 1], to[FG_DOMAIN_MAX + 1], id[FG_DIALBACK_ID_MAX + 1];
    char key[FG_DIALBACK_KEY_LEN * 2 + 1]; /* kept until the connection is up */
};

struct link {
    struct link *prev, *next;
    struct fg_links *owner;
    enum kind kind;
    struct fg_conn *conn;
    struct fg_s2s *s2s;
    bool closing, connected, direct_tls, authed;
    bool admitted; /* inbound: counted against the connection limits (pkey is set) */
    char local[FG_DOMAIN_MAX + 1], remote[FG_DOMAIN_MAX + 1];
    char pkey[FG_DOMAIN_MAX + 1]; /* the partner's primary domain (status key) */
    char why[256];
    char last_reason[352];     /* why the last connection attempt failed, with its address */
    char addr[64];             /* the address being tried: "ip:port" or "[ip]:port" */
    struct fg_partner partner; /* outbound kinds */
    int dns_id;
    struct fg_dns_targets *targets;
    size_t ti, ai;
    uint64_t deadline_ms; /* connect timeout */
    struct qitem *q;
    size_t nq;
    struct pverify pv[VERIFY_MAX];
    size_t npv;
};

struct pstat { /* per status key: last error, refused stanzas, back-off */
    char domain[FG_DOMAIN_MAX + 1];
    int64_t err_time;
    char rule[48], message[384], fix[256];
    bool has_error;
    unsigned long refused;
    unsigned long routed; /* stanzas carried to or from this partner */
    uint64_t retry_at_ms, backoff_ms;
};

struct fg_links {
    uv_loop_t *loop;
    const struct fg_config *cfg;
    struct fg_im *im;
    struct fg_dns *dns;
    struct fg_tls_ctx *tls_server, *tls_client;
    struct fg_listener *plain, *direct;
    struct fg_s2s_config s2s_cfg;
    struct fg_dialback_secret secret;
    size_t max_buffered;
    const struct fg_partner *partners;
    size_t npartners;
    struct fg_gateway gateway;
    struct fg_partner synth; /* an unlisted domain's partner, valid during one lookup */
    bool synth_set;
    struct pstat *stats;
    size_t nstats;
    uv_timer_t tick;
    uint64_t last_status_ms;
    bool dirty;
    struct link *head;
    size_t n;
    bool stopping, timer_closed;
    void (*done)(void *ud);
    void *done_ud;
};

static void link_free_if_unconnected(struct link *k);
static void out_try_next(struct link *k);

/* ---- partners and status ---- */

static const struct fg_partner *lookup(struct fg_links *o, const char *domain)
{
    for (size_t i = 0; o->cfg->domains[i]; i++)
        if (strcmp(o->cfg->domains[i], domain) == 0)
            return NULL;
    for (size_t i = 0; i < o->npartners; i++) {
        const struct fg_partner *p = &o->partners[i];
        if (strcmp(p->domain, domain) == 0)
            return p;
        for (size_t j = 0; p->additional[j]; j++)
            if (strcmp(p->additional[j], domain) == 0)
                return p;
    }
    for (size_t i = 0; i < o->npartners; i++) {
        const struct fg_partner *p = &o->partners[i];
        if (!p->subdomains)
            continue;
        if (fg_domain_within(domain, p->domain))
            return p;
        for (size_t j = 0; p->additional[j]; j++)
            if (fg_domain_within(domain, p->additional[j]))
                return p;
    }
    int t = fg_ptype_parse(o->gateway.unlisted_domains);
    if (t < 0)
        return NULL;
    if (o->synth_set)
        fg_partner_clear(&o->synth);
    fg_partner_init(&o->synth, domain);
    o->synth.type = (enum fg_ptype)t;
    o->synth_set = true;
    return &o->synth;
}

static struct pstat *stat_for(struct fg_links *o, const char *domain)
{
    for (size_t i = 0; i < o->nstats; i++)
        if (strcmp(o->stats[i].domain, domain) == 0)
            return &o->stats[i];
    if (o->nstats >= 4096) /* bound memory against many unlisted names */
        return NULL;
    o->stats = fg_realloc(o->stats, (o->nstats + 1) * sizeof *o->stats);
    struct pstat *s = &o->stats[o->nstats++];
    memset(s, 0, sizeof *s);
    snprintf(s->domain, sizeof s->domain, "%s", domain);
    return s;
}

/* The status key of a remote domain: its partner's primary domain, else itself. */
static void status_key(struct fg_links *o, const char *remote, char *out, size_t len)
{
    const struct fg_partner *p = lookup(o, remote);
    snprintf(out, len, "%s", p ? p->domain : remote);
}

static void record_error(struct fg_links *o, const char *key, const char *rule, const char *message,
                         const char *fix)
{
    struct pstat *s = stat_for(o, key);
    if (!s)
        return;
    s->has_error = true;
    s->err_time = fg_time_now();
    snprintf(s->rule, sizeof s->rule, "%s", rule ? rule : "");
    snprintf(s->message, sizeof s->message, "%s", message ? message : "");
    snprintf(s->fix, sizeof s->fix, "%s", fix ? fix : "");
    o->dirty = true;
}

static void count_refused(struct fg_links *o, const char *key)
{
    struct pstat *s = stat_for(o, key);
    if (s)
        s->refused++;
    o->dirty = true;
}

static void count_routed(struct fg_links *o, const char *key)
{
    struct pstat *s = stat_for(o, key);
    if (s)
        s->routed++;
    o->dirty = true;
}

/* ---- connection limits (SPEC section 5) ---- */

/* Streams that count against the limits: every live outbound one (verify-only included),
 * inbound ones once admitted; only those of partner pkey unless pkey is NULL. */
static size_t count_streams(const struct fg_links *o, const char *pkey)
{
    size_t n = 0;
    for (const struct link *k = o->head; k; k = k->next) {
        if (k->closing || (k->kind == K_IN && !k->admitted))
            continue;
        if (!pkey || strcmp(k->pkey, pkey) == 0)
            n++;
    }
    return n;
}

/* NULL when one more stream with partner p fits both limits; else the stream error
 * condition that refuses it, with the reason and the fix written out. */
static const char *over_limit(const struct fg_links *o, const struct fg_partner *p, char *reason,
                              size_t rlen, char *fix, size_t flen)
{
    size_t all = count_streams(o, NULL);
    if (all >= (size_t)o->gateway.connection_limit) {
        snprintf(reason, rlen, "the gateway already has %zu s2s streams, its connection_limit",
                 all);
        snprintf(fix, flen, "raise it with fedgatectl gateway set --connection-limit N");
        return "resource-constraint";
    }
    long lim = p->connection_limit > 0 ? p->connection_limit : o->gateway.partner_connection_limit;
    size_t mine = count_streams(o, p->domain);
    if (mine >= (size_t)lim) {
        snprintf(reason, rlen, "%s already has %zu s2s streams, its connection limit (%s)",
                 p->domain, mine,
                 p->connection_limit > 0 ? "partner connection_limit"
                                         : "gateway partner_connection_limit");
        if (p->connection_limit > 0)
            snprintf(fix, flen, "raise it with fedgatectl partner set %s --connection-limit N",
                     p->domain);
        else
            snprintf(fix, flen,
                     "raise it with fedgatectl partner set %s --connection-limit N, or "
                     "fedgatectl gateway set --partner-connection-limit N",
                     p->domain);
        return "policy-violation";
    }
    return NULL;
}

/* ---- links ---- */

static struct link *link_new(struct fg_links *o, enum kind kind)
{
    struct link *k = fg_calloc(1, sizeof *k);
    k->owner = o;
    k->kind = kind;
    k->next = o->head;
    if (o->head)
        o->head->prev = k;
    o->head = k;
    o->n++;
    o->dirty = true;
    return k;
}

static void maybe_free(struct fg_links *o)
{
    if (!o->stopping || !o->timer_closed || o->n)
        return;
    void (*done)(void *) = o->done;
    void *ud = o->done_ud;
    fg_dns_free(o->dns);
    if (o->tls_server)
        fg_tls_ctx_free(o->tls_server);
    if (o->tls_client)
        fg_tls_ctx_free(o->tls_client);
    if (o->synth_set)
        fg_partner_clear(&o->synth);
    fg_dialback_secret_clear(&o->secret);
    fg_free(o->stats);
    fg_free(o);
    if (done)
        done(ud);
}

static void bounce_queue(struct link *k, const char *local, const char *remote,
                         const char *condition, const char *text)
{
    struct fg_links *o = k->owner;
    size_t w = 0;
    for (size_t i = 0; i < k->nq; i++) {
        struct qitem *q = &k->q[i];
        if ((local && strcmp(q->local, local) != 0) || (remote && strcmp(q->remote, remote) != 0)) {
            k->q[w++] = *q;
            continue;
        }
        count_refused(o, k->pkey);
        if (o->im)
            fg_im_bounce(o->im, q->stanza, q->arena, condition, text);
        else
            fg_arena_free(q->arena);
    }
    k->nq = w;
}

/* Answers every pending verification of a verify-only link that could not ask. */
static void fail_verifies(struct link *k, enum fg_s2s_verdict v)
{
    struct fg_links *o = k->owner;
    for (size_t i = 0; i < k->npv; i++) {
        struct pverify *p = &k->pv[i];
        for (struct link *in = o->head; in; in = in->next)
            if (in->kind == K_IN && in->s2s && !in->closing &&
                strcmp(fg_s2s_stream_id(in->s2s), p->id) == 0)
                fg_s2s_in_dialback_result(in->s2s, p->to, p->from, v);
    }
    k->npv = 0;
}

static void link_unlink_free(struct link *k)
{
    struct fg_links *o = k->owner;
    if (k->kind == K_OUT)
        bounce_queue(k, NULL, NULL, "remote-server-not-found",
                     "the link to the remote server ended");
    if (k->npv) /* a verify-only link, or an outbound one that carried db:verify */
        fail_verifies(k, FG_S2S_ERROR);
    fg_free(k->q);
    if (k->dns_id > 0)
        fg_dns_cancel(o->dns, k->dns_id);
    fg_dns_targets_free(k->targets);
    fg_s2s_free(k->s2s);
    if (k->kind != K_IN)
        fg_partner_clear(&k->partner);
    if (k->prev)
        k->prev->next = k->next;
    else
        o->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    o->n--;
    o->dirty = true;
    fg_free(k);
    maybe_free(o);
}

/* ---- s2s -> outside ---- */

static void io_send(void *ud, const char *data, size_t len)
{
    struct link *k = ud;
    if (k->closing || !k->conn)
        return;
    if (fg_conn_write(k->conn, data, len) == FG_ELIMIT) {
        fg_log(FG_LOG_WARN, "s2s-overflow", "remote", k->remote, "reason",
               "unsent data over [limits] max_buffered", NULL);
        k->closing = true;
        fg_conn_abort(k->conn);
    }
}

static void io_start_tls(void *ud)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    int rc = k->kind == K_IN
                 ? fg_conn_start_tls(k->conn, o->tls_server)
                 : fg_conn_start_tls_client(k->conn, o->tls_client, k->remote, k->local, NULL);
    if (rc != FG_OK && !k->closing) {
        k->closing = true;
        fg_conn_abort(k->conn);
    }
}

static void io_close(void *ud)
{
    struct link *k = ud;
    k->owner->dirty = true;
    if (!k->closing && k->conn) {
        k->closing = true;
        fg_conn_close(k->conn);
    }
}

static const char *io_admit(void *ud, const struct fg_partner *p, char *reason, size_t rlen,
                            char *fix, size_t flen)
{
    struct link *k = ud;
    const char *cond = over_limit(k->owner, p, reason, rlen, fix, flen);
    if (!cond) {
        snprintf(k->pkey, sizeof k->pkey, "%s", p->domain);
        k->admitted = true;
    }
    return cond;
}

static const struct fg_partner *io_lookup(void *ud, const char *domain)
{
    struct link *k = ud;
    return lookup(k->owner, domain);
}

static bool io_cert_matches(void *ud, const char *domain, const char **why)
{
    struct link *k = ud;
    if (!k->conn || !fg_conn_is_tls(k->conn))
        return false;
    if (!fg_conn_tls_peer_verified(k->conn)) {
        const char *e = fg_conn_tls_verify_error(k->conn);
        snprintf(k->why, sizeof k->why, "certificate of %s did not verify: %s", domain,
                 e ? e : "unknown reason");
        *why = k->why;
        return false;
    }
    if (!fg_certid_match(fg_conn_tls_peer_cert(k->conn), domain, k->why, sizeof k->why)) {
        *why = k->why;
        return false;
    }
    return true;
}

static int io_dialback_key(void *ud, const char *receiving, const char *originating,
                           const char *stream_id, char *out, size_t outlen)
{
    struct link *k = ud;
    return fg_dialback_key(&k->owner->secret, receiving, originating, stream_id, out, outlen);
}

static struct link *out_link_new(struct fg_links *o, enum kind kind, const char *local,
                                 const char *remote, const struct fg_partner *p);

static void io_verify_dialback(void *ud, const char *from, const char *to, const char *stream_id,
                               const char *key)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    const struct fg_partner *p = lookup(o, from);
    if (!p || o->stopping) {
        fg_s2s_in_dialback_result(k->s2s, from, to, FG_S2S_ERROR);
        return;
    }
    /* XEP-0220 2.3: an outbound stream to the authoritative server that is already up
     * carries the db:verify, else a verify-only stream does (one per pair, reused) */
    struct link *v = NULL;
    for (struct link *x = o->head; x; x = x->next)
        if (x->kind == K_OUT && x->authed && x->s2s && !x->closing && x->npv < VERIFY_MAX &&
            strcmp(x->local, to) == 0 && strcmp(x->remote, from) == 0) {
            v = x;
            break;
        }
    for (struct link *x = o->head; x && !v; x = x->next)
        if (x->kind == K_VERIFY && !x->closing && x->npv < VERIFY_MAX &&
            strcmp(x->local, to) == 0 && strcmp(x->remote, from) == 0) {
            v = x;
            break;
        }
    if (!v)
        v = out_link_new(o, K_VERIFY, to, from, p);
    fg_log(FG_LOG_DEBUG, "s2s-verify-request", "local", to, "remote", from, "via",
           v && v->kind == K_OUT ? "outbound-stream" : "verify-stream", NULL);
    if (!v) {
        fg_s2s_in_dialback_result(k->s2s, from, to, FG_S2S_ERROR);
        return;
    }
    if (strlen(key) >= sizeof v->pv[0].key) {
        fg_s2s_in_dialback_result(k->s2s, from, to, FG_S2S_INVALID);
        return;
    }
    struct pverify *pv = &v->pv[v->npv++];
    snprintf(pv->from, sizeof pv->from, "%s", to);
    snprintf(pv->to, sizeof pv->to, "%s", from);
    snprintf(pv->id, sizeof pv->id, "%s", stream_id);
    snprintf(pv->key, sizeof pv->key, "%s", key);
    if (v->s2s && fg_s2s_out_verify(v->s2s, to, from, stream_id, key) != FG_OK) {
        v->npv--;
        fg_s2s_in_dialback_result(k->s2s, from, to, FG_S2S_ERROR);
    }
}

static void flush_queue(struct link *k)
{
    size_t w = 0;
    for (size_t i = 0; i < k->nq; i++) {
        struct qitem *q = &k->q[i];
        if (!fg_s2s_has_pair(k->s2s, q->local, q->remote)) {
            k->q[w++] = *q;
            continue;
        }
        if (fg_s2s_out_send_stanza(k->s2s, q->stanza) != FG_OK && k->owner->im) {
            fg_im_bounce(k->owner->im, q->stanza, q->arena, "remote-server-not-found",
                         "the link could not carry the stanza");
            continue;
        }
        count_routed(k->owner, k->pkey);
        fg_arena_free(q->arena);
    }
    k->nq = w;
}

static void io_authenticated(void *ud, const char *local, const char *remote,
                             enum fg_s2s_auth method)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    const char *tls = k->conn ? fg_conn_tls_version(k->conn) : NULL;
    fg_log(FG_LOG_INFO, "s2s-auth", "dir", k->kind == K_IN ? "in" : "out", "local", local, "remote",
           remote, "method", fg_s2s_auth_name(method), "tls", tls ? tls : "none", NULL);
    k->authed = true;
    o->dirty = true;
    struct pstat *s = stat_for(o, k->pkey);
    if (s)
        s->backoff_ms = 0;
    if (k->kind == K_OUT)
        flush_queue(k);
}

static void io_stanza(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    if (strcmp(stanza->name, "iq") == 0)
        for (struct link *x = o->head; x; x = x->next)
            if (x->kind == K_OUT && x->s2s && !x->closing && fg_s2s_out_pong(x->s2s, stanza)) {
                fg_arena_free(arena);
                return;
            }
    if (o->im) {
        /* counted for the partner of the sender's domain */
        const char *from = fg_xml_attr(stanza, "from");
        if (from) {
            const char *at = strchr(from, '@'), *d = at ? at + 1 : from;
            char dom[FG_DOMAIN_MAX + 1], key[FG_DOMAIN_MAX + 1];
            snprintf(dom, sizeof dom, "%.*s", (int)strcspn(d, "/"), d);
            status_key(o, dom, key, sizeof key);
            count_routed(o, key);
        }
        fg_im_deliver_remote(o->im, stanza, arena);
    } else {
        fg_arena_free(arena);
    }
}

static void io_refused(void *ud, const char *remote, const char *rule, const char *reason,
                       const char *fix)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    const char *r = remote && *remote ? remote : k->remote;
    fg_log(FG_LOG_WARN, "s2s-refused", "dir", k->kind == K_IN ? "in" : "out", "remote",
           *r ? r : "unknown", "rule", rule, "reason", reason, "fix", fix, NULL);
    if (*r) {
        char key[FG_DOMAIN_MAX + 1];
        status_key(o, r, key, sizeof key);
        record_error(o, key, rule, reason, fix);
    }
}

static void io_pair_failed(void *ud, const char *local, const char *remote, const char *condition,
                           const char *reason)
{
    struct link *k = ud;
    if (k->kind == K_OUT)
        bounce_queue(k, local, remote, condition, reason);
}

static void io_verify_result(void *ud, const char *from, const char *to, const char *id,
                             enum fg_s2s_verdict v)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    for (size_t i = 0; i < k->npv; i++)
        if (strcmp(k->pv[i].id, id) == 0 && strcmp(k->pv[i].from, from) == 0 &&
            strcmp(k->pv[i].to, to) == 0) {
            k->pv[i] = k->pv[--k->npv];
            break;
        }
    for (struct link *in = o->head; in; in = in->next)
        if (in->kind == K_IN && in->s2s && !in->closing &&
            strcmp(fg_s2s_stream_id(in->s2s), id) == 0)
            fg_s2s_in_dialback_result(in->s2s, to, from, v);
    if (k->kind == K_VERIFY && k->npv == 0 && !k->closing)
        fg_s2s_close(k->s2s, NULL);
}

static struct fg_s2s_io make_io(struct link *k)
{
    return (struct fg_s2s_io){
        .ud = k,
        .send = io_send,
        .start_tls = io_start_tls,
        .close = io_close,
        .lookup_partner = io_lookup,
        .cert_matches = io_cert_matches,
        .dialback_key = io_dialback_key,
        .verify_dialback = io_verify_dialback,
        .authenticated = io_authenticated,
        .stanza = io_stanza,
        .refused = io_refused,
        .pair_failed = io_pair_failed,
        .verify_result = io_verify_result,
        .admit = io_admit,
    };
}

/* ---- net -> s2s ---- */

static void on_data(void *ud, const char *buf, size_t len)
{
    struct link *k = ud;
    if (k->s2s && !k->closing)
        fg_s2s_feed(k->s2s, buf, len);
}

static void on_tls_ready(void *ud)
{
    struct link *k = ud;
    if (!k->s2s || k->closing)
        return;
    const char *dom = fg_conn_tls_domain(k->conn);
    struct fg_s2s_tls info = {fg_conn_tls_version(k->conn),
                              k->kind != K_IN && dom && strcmp(dom, k->local) == 0};
    fg_s2s_tls_ready(k->s2s, &info);
    if (k->kind != K_IN && k->direct_tls)
        fg_s2s_start(k->s2s);
    k->owner->dirty = true;
}

static void on_connected(void *ud)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    k->connected = true;
    k->deadline_ms = 0;
    const struct fg_s2s_io io = make_io(k);
    k->s2s =
        k->kind == K_OUT
            ? fg_s2s_out_new(&o->s2s_cfg, &io, k->local, k->remote, &k->partner, k->direct_tls)
            : fg_s2s_verify_new(&o->s2s_cfg, &io, k->local, k->remote, &k->partner, k->direct_tls);
    if (!k->s2s) {
        k->closing = true;
        fg_conn_abort(k->conn);
        return;
    }
    if (k->kind == K_VERIFY) /* the requests made while connecting */
        for (size_t i = 0; i < k->npv; i++)
            fg_s2s_out_verify(k->s2s, k->pv[i].from, k->pv[i].to, k->pv[i].id, k->pv[i].key);
    if (k->direct_tls) {
        if (fg_conn_start_tls_client(k->conn, o->tls_client, k->remote, k->local, "xmpp-server") !=
            FG_OK) {
            k->closing = true;
            fg_conn_abort(k->conn);
        }
        return;
    }
    fg_s2s_start(k->s2s);
}

static void on_closed(void *ud, const char *reason)
{
    struct link *k = ud;
    struct fg_links *o = k->owner;
    k->conn = NULL;
    if (k->kind != K_IN && !k->connected && !o->stopping) {
        fg_log(FG_LOG_INFO, "s2s-connect-failed", "remote", k->remote, "address", k->addr,
               "reason", reason, NULL);
        snprintf(k->last_reason, sizeof k->last_reason, "%s: %s", k->addr, reason);
        k->closing = false;
        out_try_next(k);
        return;
    }
    const char *r = k->remote;
    if (k->s2s) {
        struct fg_s2s_info in;
        fg_s2s_get_info(k->s2s, &in);
        if (*in.remote)
            r = in.remote;
    }
    fg_log(FG_LOG_DEBUG, "s2s-closed", "dir", k->kind == K_IN ? "in" : "out", "remote",
           *r ? r : "unknown", "reason", reason, NULL);
    link_unlink_free(k);
}

static const struct fg_conn_cb conn_cb = {on_data, on_tls_ready, on_connected, on_closed};

/* ---- outbound: DNS, connect, back-off ---- */

static void out_fail(struct link *k, const char *condition, const char *message)
{
    struct fg_links *o = k->owner;
    fg_log(FG_LOG_WARN, "s2s-refused", "dir", "out", "remote", k->remote, "rule", "connect",
           "reason", message, "fix",
           "check the partner's DNS records (or proxy_fqdn) and that its server is reachable",
           NULL);
    record_error(
        o, k->pkey, "connect", message,
        "check the partner's DNS records (or proxy_fqdn) and that its server is reachable");
    struct pstat *s = stat_for(o, k->pkey);
    if (s) {
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (s->backoff_ms > BACKOFF_MAX_MS)
            s->backoff_ms = BACKOFF_MAX_MS;
        s->retry_at_ms = fg_time_mono_ms() + s->backoff_ms;
    }
    if (k->kind == K_OUT)
        bounce_queue(k, NULL, NULL, condition, message);
    link_unlink_free(k);
}

/* Connects to the next address of the targets, or fails the link. */
static void out_try_next(struct link *k)
{
    struct fg_links *o = k->owner;
    while (k->targets && k->ti < k->targets->n) {
        const struct fg_dns_target *t = &k->targets->v[k->ti];
        if (k->ai >= t->naddrs) {
            k->ti++;
            k->ai = 0;
            continue;
        }
        const struct fg_dns_addr *a = &t->addrs[k->ai++];
        char err[256];
        k->direct_tls = t->direct_tls;
        k->connected = false;
        snprintf(k->addr, sizeof k->addr, strchr(a->ip, ':') ? "[%s]:%u" : "%s:%u", a->ip,
                 (unsigned)t->port);
        k->conn =
            fg_conn_connect(o->loop, a->ip, t->port, o->max_buffered, &conn_cb, k, err, sizeof err);
        if (k->conn) {
            k->deadline_ms = fg_time_mono_ms() + CONNECT_TIMEOUT_MS;
            return;
        }
        fg_log(FG_LOG_INFO, "s2s-connect-failed", "remote", k->remote, "address", k->addr,
               "reason", err, NULL);
        snprintf(k->last_reason, sizeof k->last_reason, "%s: %s", k->addr, err);
    }
    char msg[896];
    if (k->last_reason[0])
        snprintf(msg, sizeof msg, "could not connect to any address of %s (last: %s)", k->remote,
                 k->last_reason);
    else
        snprintf(msg, sizeof msg, "could not connect to any address of %s", k->remote);
    out_fail(k, "remote-server-not-found", msg);
}

static void on_resolved(void *ud, const struct fg_dns_targets *t, const char *error)
{
    struct link *k = ud;
    k->dns_id = 0;
    if (!t) {
        out_fail(k, "remote-server-not-found", error ? error : "DNS lookup failed");
        return;
    }
    k->targets = fg_dns_targets_copy(t);
    out_try_next(k);
}

static struct link *out_link_new(struct fg_links *o, enum kind kind, const char *local,
                                 const char *remote, const struct fg_partner *p)
{
    struct link *k = link_new(o, kind);
    snprintf(k->local, sizeof k->local, "%s", local);
    snprintf(k->remote, sizeof k->remote, "%s", remote);
    snprintf(k->pkey, sizeof k->pkey, "%s", p->domain);
    fg_partner_copy(&k->partner, p);
    int id;
    if (p->proxy_fqdn && *p->proxy_fqdn) {
        char host[FG_DNS_NAME_MAX + 1], err[256];
        uint16_t port = 0;
        id = fg_dns_parse_hostport(p->proxy_fqdn, FG_DNS_S2S_PORT, host, sizeof host, &port, err,
                                   sizeof err) == FG_OK
                 ? fg_dns_resolve_host(o->dns, host, port, on_resolved, k)
                 : FG_EINVAL;
    } else {
        id = fg_dns_resolve_xmpp_server(o->dns, remote, on_resolved, k);
    }
    if (id <= 0) {
        k->npv = 0;
        link_unlink_free(k);
        return NULL;
    }
    k->dns_id = id;
    return k;
}

/* ---- outbound stanzas (the IM layer's remote hook) ---- */

/* The domain of a JID attribute, normalised, into out; false when malformed. */
static bool jid_domain(const char *jid, char *out, size_t len)
{
    if (!jid)
        return false;
    size_t n = strcspn(jid, "/");
    const char *at = memchr(jid, '@', n);
    const char *d = at ? at + 1 : jid;
    size_t dl = n - (size_t)(d - jid);
    char tmp[FG_DOMAIN_MAX + 2];
    if (dl == 0 || dl > FG_DOMAIN_MAX)
        return false;
    memcpy(tmp, d, dl);
    tmp[dl] = 0;
    const char *why;
    return fg_domain_normalize(tmp, out, len, &why) == FG_OK;
}

static bool hosted(const struct fg_links *o, const char *d)
{
    for (size_t i = 0; o->cfg->domains[i]; i++)
        if (strcmp(o->cfg->domains[i], d) == 0)
            return true;
    return false;
}

/* Removes every <status/> child of a presence stanza (in its own namespace or none). */
static void strip_status(struct fg_xml_node *st)
{
    struct fg_xml_node *prev = NULL, *c = st->children;
    while (c) {
        struct fg_xml_node *next = c->next;
        if (c->type == FG_XML_ELEMENT && strcmp(c->name, "status") == 0 &&
            (fg_xml_ns_eq(c->ns, st->ns) || fg_xml_ns_eq(c->ns, NULL))) {
            if (prev)
                prev->next = next;
            else
                st->children = next;
            if (st->last_child == c)
                st->last_child = prev;
            c->next = NULL;
        } else {
            prev = c;
        }
        c = next;
    }
}

int fg_links_remote(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena)
{
    struct fg_links *o = ud;
    char local[FG_DOMAIN_MAX + 1], remote[FG_DOMAIN_MAX + 1];
    if (!o || o->stopping || !jid_domain(fg_xml_attr(stanza, "from"), local, sizeof local) ||
        !hosted(o, local) || !jid_domain(fg_xml_attr(stanza, "to"), remote, sizeof remote))
        return FG_EINVAL;
    const struct fg_partner *p = lookup(o, remote);
    if (!p) {
        char text[512];
        snprintf(text, sizeof text,
                 "%s is not a partner of this gateway and unlisted domains are blocked", remote);
        count_refused(o, remote);
        fg_im_bounce(o->im, stanza, arena, "not-allowed", text);
        return FG_OK;
    }
    /* SPEC 4: status text reaches federated partners only; the type is read per stanza */
    if (fg_policy_type_strips_status(p->type) && stanza->name &&
        strcmp(stanza->name, "presence") == 0)
        strip_status(stanza);
    /* one link per (local domain, partner): the pair may ride an existing one */
    struct link *k = NULL, *same = NULL;
    for (struct link *x = o->head; x; x = x->next) {
        if (x->kind != K_OUT || x->closing || strcmp(x->local, local) != 0)
            continue;
        if (strcmp(x->remote, remote) == 0) {
            k = x;
            break;
        }
        if (!same && strcmp(x->pkey, p->domain) == 0)
            same = x;
    }
    if (!k && same && same->s2s && same->authed) {
        if (fg_s2s_has_pair(same->s2s, local, remote))
            k = same;
        else {
            int rc = fg_s2s_out_add_pair(same->s2s, local, remote);
            if (rc == FG_OK || rc == FG_EEXISTS)
                k = same;
        }
    }
    if (!k) {
        struct pstat *s = stat_for(o, p->domain);
        if (s && s->retry_at_ms && fg_time_mono_ms() < s->retry_at_ms) {
            count_refused(o, p->domain);
            fg_im_bounce(o->im, stanza, arena, "remote-server-not-found",
                         s->has_error ? s->message : "the remote server was not reachable");
            return FG_OK;
        }
        char reason[256], fix[256];
        if (over_limit(o, p, reason, sizeof reason, fix, sizeof fix)) {
            fg_log(FG_LOG_WARN, "s2s-refused", "dir", "out", "remote", remote, "rule",
                   "connection-limit", "reason", reason, "fix", fix, NULL);
            record_error(o, p->domain, "connection-limit", reason, fix);
            count_refused(o, p->domain);
            fg_im_bounce(o->im, stanza, arena, "resource-constraint", reason);
            return FG_OK;
        }
        k = out_link_new(o, K_OUT, local, remote, p);
        if (!k) {
            count_refused(o, p->domain);
            fg_im_bounce(o->im, stanza, arena, "remote-server-not-found",
                         "the remote domain is not a valid host name");
            return FG_OK;
        }
    }
    if (k->s2s && fg_s2s_has_pair(k->s2s, local, remote) && k->nq == 0) {
        if (fg_s2s_out_send_stanza(k->s2s, stanza) == FG_OK) {
            count_routed(o, p->domain);
            fg_arena_free(arena);
            return FG_OK;
        }
    }
    if (k->nq >= QUEUE_MAX) {
        count_refused(o, p->domain);
        fg_im_bounce(o->im, stanza, arena, "resource-constraint",
                     "too many stanzas are waiting for the link to this domain");
        return FG_OK;
    }
    if (k->nq % 16 == 0)
        k->q = fg_realloc(k->q, (k->nq + 16) * sizeof *k->q);
    struct qitem *q = &k->q[k->nq++];
    q->stanza = stanza;
    q->arena = arena;
    snprintf(q->local, sizeof q->local, "%s", local);
    snprintf(q->remote, sizeof q->remote, "%s", remote);
    return FG_OK;
}

/* ---- inbound ---- */

enum fg_im_verdict fg_links_inbound(void *ud, const struct fg_im_remote_info *info,
                                    struct fg_xml_node *stanza)
{
    (void)stanza;
    struct fg_links *o = ud;
    char remote[FG_DOMAIN_MAX + 1];
    if (!o || !jid_domain(info->remote_bare, remote, sizeof remote))
        return FG_IM_ALLOW; /* the s2s layer checked the address already */
    const struct fg_partner *p = lookup(o, remote);
    /* the s2s layer refuses streams from non-partners; be strict if one slips through */
    enum fg_ptype t = p ? p->type : FG_PT_PUBLIC_UNVERIFIED;
    enum fg_pkind kind = info->kind == FG_IM_MESSAGE        ? FG_PK_MESSAGE
                         : info->kind == FG_IM_IQ           ? FG_PK_IQ
                         : info->kind == FG_IM_SUBSCRIPTION ? FG_PK_SUBSCRIPTION
                                                            : FG_PK_PRESENCE;
    enum fg_pverdict v =
        fg_policy_type_decide(t, kind, info->type, info->in_roster, info->pre_approved);
    switch (v) {
    case FG_PV_AUTO_APPROVE:
        return FG_IM_AUTO_APPROVE;
    case FG_PV_REFUSE: {
        char key[FG_DOMAIN_MAX + 1];
        snprintf(key, sizeof key, "%s", p ? p->domain : remote);
        static const char *const kinds[] = {"message", "presence", "subscription", "iq"};
        /* never the body: answered as for a nonexistent user, the reason is logged here */
        fg_log(FG_LOG_INFO, "s2s-refused-stanza", "partner", key, "rule", "partner-type",
               "partner_type", fg_ptype_name(t), "kind", kinds[kind], "type",
               info->type && *info->type ? info->type : "-", "from", info->remote_bare, "to",
               info->local_bare, "reason", "the local user has not added this contact", NULL);
        count_refused(o, key);
        return FG_IM_REFUSE;
    }
    case FG_PV_ALLOW:
    default:
        return FG_IM_ALLOW;
    }
}

static void accept_s2s(struct fg_links *o, struct fg_conn *conn, bool direct_tls)
{
    struct link *k = link_new(o, K_IN);
    k->conn = conn;
    k->connected = true;
    k->direct_tls = direct_tls;
    const struct fg_s2s_io io = make_io(k);
    k->s2s = fg_s2s_in_new(&o->s2s_cfg, &io, direct_tls, fg_conn_peer(conn));
    fg_conn_set_cb(conn, &conn_cb, k);
}

static void on_accept_plain(void *ud, struct fg_conn *conn)
{
    accept_s2s(ud, conn, false);
}

static void on_accept_direct(void *ud, struct fg_conn *conn)
{
    accept_s2s(ud, conn, true);
}

/* ---- status ---- */

static json_t *stream_json(struct link *k)
{
    struct fg_s2s_info in;
    fg_s2s_get_info(k->s2s, &in);
    char ts[32];
    json_t *since = json_null();
    if (in.since_ms) {
        uint64_t now = fg_time_mono_ms();
        int64_t at = fg_time_now() - (int64_t)((now > in.since_ms ? now - in.since_ms : 0) / 1000);
        since = json_string(fg_time_rfc3339(at, ts, sizeof ts));
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o}", "direction", fg_s2s_dir_name(in.dir), "state",
                     fg_s2s_state_name(in.state), "local_domain", *in.local ? in.local : k->local,
                     "remote_domain", *in.remote ? in.remote : k->remote, "tls",
                     in.tls_version ? json_string(in.tls_version) : json_null(), "auth",
                     fg_s2s_auth_name(in.auth), "since", since);
}

static json_t *entry_for(json_t *parts, const char *key)
{
    json_t *e = json_object_get(parts, key);
    if (!e) {
        e = json_pack("{s:[],s:n,s:i}", "streams", "last_error", "refused_stanzas", 0);
        json_object_set_new(parts, key, e);
    }
    return e;
}

static char *status_doc(struct fg_links *o)
{
    json_t *parts = json_object();
    for (struct link *k = o->head; k; k = k->next) {
        if (!k->s2s || k->kind == K_VERIFY)
            continue;
        struct fg_s2s_info in;
        fg_s2s_get_info(k->s2s, &in);
        const char *r = *in.remote ? in.remote : k->remote;
        if (!*r)
            continue;
        char key[FG_DOMAIN_MAX + 1];
        if (k->kind == K_IN)
            status_key(o, r, key, sizeof key);
        else
            snprintf(key, sizeof key, "%s", k->pkey);
        json_array_append_new(json_object_get(entry_for(parts, key), "streams"), stream_json(k));
    }
    for (size_t i = 0; i < o->nstats; i++) {
        struct pstat *s = &o->stats[i];
        if (!s->has_error && !s->refused && !s->routed)
            continue;
        json_t *e = entry_for(parts, s->domain);
        char ts[32];
        if (s->has_error)
            json_object_set_new(e, "last_error",
                                json_pack("{s:s,s:o,s:s,s:s}", "time",
                                          fg_time_rfc3339(s->err_time, ts, sizeof ts), "rule",
                                          *s->rule ? json_string(s->rule) : json_null(), "message",
                                          s->message, "fix", s->fix));
        json_object_set_new(e, "refused_stanzas", json_integer((json_int_t)s->refused));
        /* internal to the stored document (metrics); partner status shows SPEC 7 keys only */
        json_object_set_new(e, "routed_stanzas", json_integer((json_int_t)s->routed));
    }
    char ts[32];
    json_t *doc = json_pack("{s:s,s:o}", "updated", fg_time_rfc3339(fg_time_now(), ts, sizeof ts),
                            "partners", parts);
    char *txt = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    char *out = txt ? fg_strdup(txt) : NULL;
    free(txt);
    return out;
}

char *fg_links_status_take(struct fg_links *o)
{
    if (!o || o->stopping)
        return NULL;
    uint64_t now = fg_time_mono_ms();
    if (!o->dirty && now - o->last_status_ms < STATUS_EVERY_MS)
        return NULL;
    o->dirty = false;
    o->last_status_ms = now;
    return status_doc(o);
}

/* ---- life cycle ---- */

static void on_tick(uv_timer_t *t)
{
    struct fg_links *o = t->data;
    uint64_t now = fg_time_mono_ms();
    for (struct link *k = o->head; k; k = k->next) {
        if (k->closing)
            continue;
        if (k->conn && !k->connected && k->deadline_ms && now > k->deadline_ms) {
            k->deadline_ms = 0;
            fg_conn_abort(k->conn); /* closed() moves on to the next address */
            continue;
        }
        if (k->s2s)
            fg_s2s_tick(k->s2s, now);
    }
}

static void set_s2s_cfg(struct fg_links *o)
{
    o->s2s_cfg = (struct fg_s2s_config){
        .domains = o->cfg->domains,
        .max_stanza_size = (size_t)o->cfg->max_stanza_size,
        .max_depth = (int)o->cfg->max_xml_depth,
        .establishment_timeout_s = (int)o->gateway.stream_establishment_timeout,
        .inactivity_timeout_s = (int)o->gateway.stream_inactivity_timeout,
        .keepalive_interval_s = (int)o->gateway.keepalive_interval,
    };
}

struct fg_links *fg_links_start(uv_loop_t *loop, const struct fg_config *cfg, struct fg_store *st,
                                const struct fg_partner *partners, size_t npartners,
                                const struct fg_gateway *gateway, char *err, size_t errlen)
{
    struct fg_links *o = fg_calloc(1, sizeof *o);
    o->loop = loop;
    o->cfg = cfg;
    o->partners = partners;
    o->npartners = npartners;
    o->gateway = *gateway;
    o->max_buffered = (size_t)cfg->max_buffered;
    set_s2s_cfg(o);
    char secret[130];
    if (fg_store_dialback_secret_get(st, secret, sizeof secret) != FG_OK) {
        snprintf(err, errlen, "cannot read the dialback secret: %s", fg_store_error(st));
        fg_free(o);
        return NULL;
    }
    fg_dialback_secret_init(&o->secret, secret, strlen(secret));
    memset(secret, 0, sizeof secret);
    o->dns = fg_dns_new(loop, cfg->dns_resolver, err, errlen);
    if (!o->dns)
        goto fail;
    o->tls_client = fg_tls_client_new(cfg->ca_file, cfg->cert_dir, cfg->domains, err, errlen);
    if (!o->tls_client) { /* no certificates (no TLS listener needs them): dialback only */
        fg_log(FG_LOG_DEBUG, "s2s-no-client-certificate", "reason", err, NULL);
        o->tls_client = fg_tls_client_new(cfg->ca_file, NULL, NULL, err, errlen);
    }
    if (!o->tls_client)
        goto fail;
    if (cfg->listen_s2s || cfg->listen_s2s_tls) {
        o->tls_server = fg_tls_server_new(cfg->cert_dir, cfg->domains, cfg->ca_file, err, errlen);
        if (!o->tls_server)
            goto fail;
        /* servers do not resume s2s sessions (ours never does): a ticket is only cost */
        fg_tls_server_set_tickets(o->tls_server, 0);
    }
    if (cfg->listen_s2s) {
        o->plain = fg_listener_new(loop, cfg->listen_s2s, false, o->tls_server, o->max_buffered,
                                   on_accept_plain, o, err, errlen);
        if (!o->plain)
            goto fail;
        fg_log(FG_LOG_INFO, "listen", "listener", "s2s", "address", cfg->listen_s2s, NULL);
    }
    if (cfg->listen_s2s_tls) {
        o->direct = fg_listener_new(loop, cfg->listen_s2s_tls, true, o->tls_server, o->max_buffered,
                                    on_accept_direct, o, err, errlen);
        if (!o->direct)
            goto fail;
        fg_log(FG_LOG_INFO, "listen", "listener", "s2s_tls", "address", cfg->listen_s2s_tls, NULL);
    }
    uv_timer_init(loop, &o->tick);
    o->tick.data = o;
    uv_timer_start(&o->tick, on_tick, TICK_MS, TICK_MS);
    o->dirty = true;
    return o;
fail:
    if (o->plain)
        fg_listener_close(o->plain);
    if (o->tls_server)
        fg_tls_ctx_free(o->tls_server);
    if (o->tls_client)
        fg_tls_ctx_free(o->tls_client);
    if (o->dns)
        fg_dns_free(o->dns);
    fg_dialback_secret_clear(&o->secret);
    fg_free(o);
    return NULL;
}

void fg_links_set_im(struct fg_links *o, struct fg_im *im)
{
    if (o)
        o->im = im;
}

void fg_links_set_policy(struct fg_links *o, const struct fg_partner *partners, size_t n,
                         const struct fg_gateway *gateway)
{
    if (!o)
        return;
    o->partners = partners;
    o->npartners = n;
    o->gateway = *gateway;
    set_s2s_cfg(o);
    for (struct link *k = o->head; k; k = k->next)
        if (k->s2s && !k->closing)
            fg_s2s_recheck(k->s2s);
    for (size_t i = 0; i < o->nstats; i++) /* a changed partner may be reachable now */
        o->stats[i].retry_at_ms = 0;
    o->dirty = true;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct fg_links *o = h->data;
    o->timer_closed = true;
    maybe_free(o);
}

void fg_links_stop(struct fg_links *o, void (*done)(void *ud), void *ud)
{
    if (!o) {
        if (done)
            done(ud);
        return;
    }
    o->done = done;
    o->done_ud = ud;
    o->stopping = true;
    if (o->plain)
        fg_listener_close(o->plain);
    if (o->direct)
        fg_listener_close(o->direct);
    for (struct link *k = o->head, *next; k; k = next) {
        next = k->next;
        if (k->closing)
            continue;
        if (k->s2s)
            fg_s2s_close(k->s2s, "system-shutdown");
        else if (k->conn) {
            k->closing = true;
            fg_conn_abort(k->conn);
        } else
            link_free_if_unconnected(k);
    }
    uv_timer_stop(&o->tick);
    uv_close((uv_handle_t *)&o->tick, on_timer_closed);
}

/* A link still resolving: nothing to close, free it now. */
static void link_free_if_unconnected(struct link *k)
{
    link_unlink_free(k);
}
