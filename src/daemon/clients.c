/* clients.c - per-connection glue for client streams: net/conn delivers bytes and TLS
 * events to xmpp/c2s; c2s asks for users (in-memory directory), binds through im and hands
 * over stanzas; im sends bytes back through the connection. A c2s stream is freed only
 * from the connection's closed callback, never inside its own callbacks. */
#include "clients.h"
#include "users.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/stats.h"
#include "im/im.h"
#include "net/conn.h"
#include "net/tls.h"
#include "xmpp/c2s.h"

#include <stdio.h>
#include <string.h>

#define TICK_MS 5000

struct client {
    struct client *prev, *next;
    struct fg_clients *owner;
    struct fg_conn *conn;
    struct fg_c2s *c2s;
    struct fg_im_session *sess;
    bool direct_tls;
    bool closing;
};

struct fg_clients {
    uv_loop_t *loop;
    struct fg_im *im;
    struct fg_userdir *const *users;
    struct fg_tls_ctx *tls;
    struct fg_listener *plain, *direct;
    struct fg_c2s_config c2s_cfg;
    size_t max_buffered;
    uv_timer_t tick;
    struct client *head;
    size_t n;
    bool stopping, timer_closed;
    void (*done)(void *ud);
    void *done_ud;
};

/* After fg_clients_stop, the owner goes once its timer and every connection are closed. */
static void maybe_free(struct fg_clients *o)
{
    if (!o->stopping || !o->timer_closed || o->n)
        return;
    void (*done)(void *) = o->done;
    void *ud = o->done_ud;
    if (o->tls)
        fg_tls_ctx_free(o->tls);
    fg_free(o);
    if (done)
        done(ud);
}

/* ---- c2s -> outside ---- */

static void io_send(void *ud, const char *data, size_t len)
{
    struct client *c = ud;
    if (c->closing)
        return;
    if (fg_conn_write(c->conn, data, len) == FG_ELIMIT) {
        /* the peer does not read: no room even for a stream error */
        fg_log(FG_LOG_WARN, "c2s-overflow", "address", fg_conn_peer(c->conn), "jid",
               fg_c2s_jid(c->c2s), "reason", "unsent data over [limits] max_buffered", NULL);
        c->closing = true;
        fg_conn_abort(c->conn);
    }
}

static void io_start_tls(void *ud)
{
    struct client *c = ud;
    if (fg_conn_start_tls(c->conn, c->owner->tls) != FG_OK) {
        c->closing = true;
        fg_conn_abort(c->conn);
    }
}

static void io_close(void *ud)
{
    struct client *c = ud;
    /* The stream is over even if the socket lingers (net waits for the peer's FIN): leave
     * the router now, so what arrives for this user meanwhile goes to its other
     * resources or to offline storage instead of into a closing socket. */
    if (c->sess) {
        struct fg_im_session *s = c->sess;
        c->sess = NULL;
        fg_stats_add(&fg_stats.c2s_sessions, -1);
        fg_im_unbind(c->owner->im, s);
    }
    if (!c->closing) {
        c->closing = true;
        fg_conn_close(c->conn);
    }
}

static int io_get_user(void *ud, const char *bare, struct fg_user *out)
{
    struct client *c = ud;
    const struct fg_user *u = fg_userdir_get(*c->owner->users, bare);
    if (!u)
        return FG_ENOTFOUND;
    *out = *u;
    return FG_OK;
}

static void sess_send(void *ud, const char *data, size_t len)
{
    io_send(ud, data, len);
}

static void sess_kick(void *ud, const char *condition)
{
    struct client *c = ud;
    fg_c2s_close(c->c2s, condition);
}

static const struct fg_im_session_ops sess_ops = {sess_send, sess_kick};

static int io_bind(void *ud, const char *bare, const char *resource, char *full, size_t len)
{
    struct client *c = ud;
    int rc = fg_im_bind(c->owner->im, bare, resource, &sess_ops, c, &c->sess, full, len);
    if (rc == FG_OK)
        fg_stats_add(&fg_stats.c2s_sessions, 1);
    return rc;
}

static void io_stanza(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena)
{
    struct client *c = ud;
    if (c->sess) {
        fg_stats_add(&fg_stats.stanzas_routed, 1);
        fg_im_stanza(c->owner->im, c->sess, stanza, arena);
    }
    else
        fg_arena_free(arena);
}

static void io_features(void *ud, struct fg_buf *b)
{
    fg_im_stream_features(b);
}

/* ---- net -> c2s ---- */

static void on_data(void *ud, const char *buf, size_t len)
{
    struct client *c = ud;
    fg_c2s_feed(c->c2s, buf, len);
}

static void on_tls_ready(void *ud)
{
    struct client *c = ud;
    unsigned char exporter[32], unique[64];
    size_t unique_len = sizeof unique;
    struct fg_c2s_tls info = {fg_conn_tls_version(c->conn), NULL, 0, NULL, 0};
    if (fg_conn_tls_exporter(c->conn, exporter, sizeof exporter) == FG_OK) {
        info.tls_exporter = exporter;
        info.tls_exporter_len = sizeof exporter;
    }
    if (fg_conn_tls_unique(c->conn, unique, &unique_len) == FG_OK) {
        info.tls_unique = unique;
        info.tls_unique_len = unique_len;
    }
    fg_c2s_tls_ready(c->c2s, &info);
}

static void on_closed(void *ud, const char *reason)
{
    struct client *c = ud;
    struct fg_clients *o = c->owner;
    if (c->sess) {
        fg_stats_add(&fg_stats.c2s_sessions, -1);
        fg_im_unbind(o->im, c->sess);
    }
    fg_stats_add(&fg_stats.c2s_connections, -1);
    fg_log(FG_LOG_DEBUG, "c2s-closed", "address", fg_conn_peer(c->conn), "jid",
           fg_c2s_jid(c->c2s), "reason", reason, NULL);
    fg_c2s_free(c->c2s);
    if (c->prev)
        c->prev->next = c->next;
    else
        o->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    o->n--;
    fg_free(c);
    maybe_free(o);
}

static const struct fg_conn_cb conn_cb = {on_data, on_tls_ready, NULL, on_closed};

static void accept_client(struct fg_clients *o, struct fg_conn *conn, bool direct_tls)
{
    struct client *c = fg_calloc(1, sizeof *c);
    c->owner = o;
    c->conn = conn;
    c->direct_tls = direct_tls;
    struct fg_c2s_io io = {
        .ud = c,
        .send = io_send,
        .start_tls = io_start_tls,
        .close = io_close,
        .get_user = io_get_user,
        .bind = io_bind,
        .stanza = io_stanza,
        .features = io_features,
    };
    c->c2s = fg_c2s_new(&o->c2s_cfg, &io, direct_tls, fg_conn_peer(conn));
    c->next = o->head;
    if (o->head)
        o->head->prev = c;
    o->head = c;
    o->n++;
    fg_stats_add(&fg_stats.c2s_connections, 1);
    fg_conn_set_cb(conn, &conn_cb, c);
}

static void on_accept_plain(void *ud, struct fg_conn *conn)
{
    accept_client(ud, conn, false);
}

static void on_accept_direct(void *ud, struct fg_conn *conn)
{
    accept_client(ud, conn, true);
}

static void on_tick(uv_timer_t *t)
{
    struct fg_clients *o = t->data;
    uint64_t now = fg_time_mono_ms();
    for (struct client *c = o->head; c; c = c->next)
        if (!c->closing)
            fg_c2s_tick(c->c2s, now);
}

struct fg_clients *fg_clients_start(uv_loop_t *loop, const struct fg_config *cfg,
                                    struct fg_im *im, struct fg_userdir *const *users,
                                    char *err, size_t errlen)
{
    if (!cfg->listen_c2s && !cfg->listen_c2s_tls)
        return fg_calloc(1, sizeof(struct fg_clients));
    struct fg_clients *o = fg_calloc(1, sizeof *o);
    o->loop = loop;
    o->im = im;
    o->users = users;
    o->max_buffered = (size_t)cfg->max_buffered;
    o->c2s_cfg = (struct fg_c2s_config){
        .domains = cfg->domains,
        .require_tls = cfg->c2s_require_tls,
        .auth_attempts = (int)cfg->auth_attempts,
        .max_stanza_size = (size_t)cfg->max_stanza_size,
        .max_depth = (int)cfg->max_xml_depth,
        .idle_timeout_s = (int)cfg->c2s_idle_timeout,
    };
    o->tls = fg_tls_server_new(cfg->cert_dir, cfg->domains, cfg->ca_file, err, errlen);
    if (!o->tls)
        goto fail;
    if (cfg->listen_c2s) {
        o->plain = fg_listener_new(loop, cfg->listen_c2s, false, NULL, o->max_buffered,
                                   on_accept_plain, o, err, errlen);
        if (!o->plain)
            goto fail;
        fg_log(FG_LOG_INFO, "listen", "listener", "c2s", "address", cfg->listen_c2s, NULL);
    }
    if (cfg->listen_c2s_tls) {
        o->direct = fg_listener_new(loop, cfg->listen_c2s_tls, true, o->tls, o->max_buffered,
                                    on_accept_direct, o, err, errlen);
        if (!o->direct)
            goto fail;
        fg_log(FG_LOG_INFO, "listen", "listener", "c2s_tls", "address", cfg->listen_c2s_tls,
               NULL);
    }
    uv_timer_init(loop, &o->tick);
    o->tick.data = o;
    uv_timer_start(&o->tick, on_tick, TICK_MS, TICK_MS);
    return o;
fail:
    if (o->plain)
        fg_listener_close(o->plain);
    if (o->tls)
        fg_tls_ctx_free(o->tls);
    fg_free(o);
    return NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct fg_clients *o = h->data;
    o->timer_closed = true;
    maybe_free(o);
}

void fg_clients_stop(struct fg_clients *o, void (*done)(void *ud), void *ud)
{
    if (!o || !o->loop) { /* nothing was started */
        fg_free(o);
        if (done)
            done(ud);
        return;
    }
    o->done = done;
    o->done_ud = ud;
    if (o->plain)
        fg_listener_close(o->plain);
    if (o->direct)
        fg_listener_close(o->direct);
    for (struct client *c = o->head; c; c = c->next)
        if (!c->closing)
            fg_c2s_close(c->c2s, "system-shutdown");
    o->stopping = true;
    uv_timer_stop(&o->tick);
    uv_close((uv_handle_t *)&o->tick, on_timer_closed);
}

size_t fg_clients_count(const struct fg_clients *o)
{
    return o ? o->n : 0;
}
