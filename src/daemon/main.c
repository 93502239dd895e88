/* main.c - fedgated: reads the configuration, opens and migrates the store, makes sure a
 * dialback secret exists, then runs the libuv loop: a heartbeat every 2 s, configuration
 * changes noticed within 2 s (revision poll), the admin listener, clean exit on SIGTERM
 * and SIGINT. Store calls run on the libuv worker pool, never on the loop thread. */
#include "admin/admin.h"
#include "clients.h"
#include "links.h"
#include "users.h"
#include "im/im.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "net/cert.h"
#include "policy/policy.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define TICK_MS 1000 /* revision poll; heartbeat every second tick */

struct partner_snapshot {
    struct fg_partner *v;
    size_t n;
};

struct daemon {
    struct fg_config cfg;
    uv_loop_t *loop;
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    uv_work_t work;
    bool work_busy;
    bool stopping;
    bool signals_on; /* the signal handles are open */
    unsigned ticks;
    uint64_t last_refresh_ms; /* subscription_refresh_interval: the last probe round */
    /* owned by the worker while work_busy */
    struct fg_store *store;
    int64_t revision;
    struct partner_snapshot partners;
    struct fg_gateway gateway;
    struct fg_userdir *users; /* read on the loop; replaced whole after a reload */
    struct fg_im *im;
    struct fg_clients *clients;
    struct fg_links *links;
    int parts_running; /* clients and links still closing at shutdown */
    char *status_doc;  /* link status for the worker to store (meta "status.links") */
    /* results handed from the worker to the loop */
    bool changed;
    struct partner_snapshot fresh;
    struct fg_gateway fresh_gateway;
    struct fg_userdir *fresh_users;
    int64_t fresh_revision;
    int work_err;
    char work_msg[512];
};

static int load_snapshot(struct fg_store *st, struct partner_snapshot *s, struct fg_gateway *g,
                         int64_t *rev)
{
    int rc = fg_store_revision(st, rev);
    if (rc == FG_OK)
        rc = fg_store_partner_list(st, &s->v, &s->n);
    if (rc == FG_OK)
        rc = fg_store_gateway_get(st, g);
    return rc;
}

/* Worker thread: heartbeat and revision check; reloads on change. */
static void work_run(uv_work_t *w)
{
    struct daemon *d = w->data;
    d->changed = false;
    d->work_err = FG_OK;
    if (d->ticks % 2 == 0) {
        char ts[32];
        fg_time_rfc3339(fg_time_now(), ts, sizeof ts);
        d->work_err = fg_store_meta_set(d->store, "daemon.heartbeat", ts);
        if (d->work_err != FG_OK) {
            snprintf(d->work_msg, sizeof d->work_msg, "heartbeat: %s", fg_store_error(d->store));
            return;
        }
    }
    if (d->status_doc) {
        d->work_err = fg_store_meta_set(d->store, "status.links", d->status_doc);
        fg_free(d->status_doc);
        d->status_doc = NULL;
        if (d->work_err != FG_OK) {
            snprintf(d->work_msg, sizeof d->work_msg, "link status: %s", fg_store_error(d->store));
            return;
        }
    }
    int64_t rev = 0;
    d->work_err = fg_store_revision(d->store, &rev);
    if (d->work_err != FG_OK) {
        snprintf(d->work_msg, sizeof d->work_msg, "revision: %s", fg_store_error(d->store));
        return;
    }
    if (rev == d->revision)
        return;
    d->fresh.v = NULL;
    d->fresh.n = 0;
    d->work_err = load_snapshot(d->store, &d->fresh, &d->fresh_gateway, &d->fresh_revision);
    if (d->work_err == FG_OK)
        d->fresh_users = fg_userdir_load(d->store, &d->work_err);
    if (d->work_err != FG_OK) {
        snprintf(d->work_msg, sizeof d->work_msg, "reload: %s", fg_store_error(d->store));
        fg_store_partners_free(d->fresh.v, d->fresh.n);
        return;
    }
    d->changed = true;
}

static const struct fg_partner *find(const struct partner_snapshot *s, const char *domain)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].domain, domain) == 0)
            return &s->v[i];
    return NULL;
}

static void log_changes(struct daemon *d)
{
    char rev[32];
    snprintf(rev, sizeof rev, "%lld", (long long)d->fresh_revision);
    for (size_t i = 0; i < d->fresh.n; i++) {
        const struct fg_partner *now = &d->fresh.v[i], *was = find(&d->partners, now->domain);
        if (!was || !fg_partner_equal(was, now))
            fg_log(FG_LOG_INFO, "config-change", "revision", rev, "partner", now->domain, "change",
                   was ? "updated" : "created", NULL);
    }
    for (size_t i = 0; i < d->partners.n; i++)
        if (!find(&d->fresh, d->partners.v[i].domain))
            fg_log(FG_LOG_INFO, "config-change", "revision", rev, "partner",
                   d->partners.v[i].domain, "change", "removed", NULL);
    for (size_t i = 0; i < fg_gateway_nkeys; i++) {
        char a[64], b[64];
        const char *k = fg_gateway_keys[i].name;
        fg_gateway_get_text(&d->gateway, k, a, sizeof a);
        fg_gateway_get_text(&d->fresh_gateway, k, b, sizeof b);
        if (strcmp(a, b) != 0)
            fg_log(FG_LOG_INFO, "config-change", "revision", rev, "gateway", k, "value", b, NULL);
    }
}

static void work_done(uv_work_t *w, int status)
{
    struct daemon *d = w->data;
    d->work_busy = false;
    if (d->work_err != FG_OK)
        fg_log(FG_LOG_WARN, "store-error", "reason", d->work_msg, "fix",
               "check that the store is reachable; fedgated keeps its last configuration", NULL);
    if (d->changed) {
        log_changes(d);
        fg_store_partners_free(d->partners.v, d->partners.n);
        d->partners = d->fresh;
        d->gateway = d->fresh_gateway;
        d->revision = d->fresh_revision;
        if (fg_userdir_count(d->users) != fg_userdir_count(d->fresh_users)) {
            char n[24];
            snprintf(n, sizeof n, "%zu", fg_userdir_count(d->fresh_users));
            fg_log(FG_LOG_INFO, "users-reloaded", "users", n, NULL);
        }
        fg_userdir_free(d->users);
        d->users = d->fresh_users;
        d->fresh_users = NULL;
        d->fresh.v = NULL;
        d->fresh.n = 0;
        fg_links_set_policy(d->links, d->partners.v, d->partners.n, &d->gateway);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct daemon *d = t->data;
    d->ticks++;
    uint64_t now = fg_time_mono_ms();
    if (!d->stopping && d->im &&
        now - d->last_refresh_ms >= (uint64_t)d->gateway.subscription_refresh_interval * 1000) {
        d->last_refresh_ms = now;
        char n[24];
        snprintf(n, sizeof n, "%zu", fg_im_refresh_probes(d->im));
        fg_log(FG_LOG_DEBUG, "presence-refresh", "probes", n, NULL);
    }
    if (d->work_busy || d->stopping)
        return;
    d->work_busy = true;
    fg_free(d->status_doc);
    d->status_doc = fg_links_status_take(d->links);
    d->work.data = d;
    uv_queue_work(d->loop, &d->work, work_run, work_done);
}

/* Every client stream has closed (each unbound from the IM layer): the IM layer can go,
 * which also closes its store writer's loop handle. */
static void part_done(struct daemon *d)
{
    if (--d->parts_running > 0)
        return;
    fg_im_free(d->im);
    d->im = NULL;
}

static void clients_done(void *ud)
{
    part_done(ud);
}

static void links_done(void *ud)
{
    struct daemon *d = ud;
    d->links = NULL;
    part_done(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    fg_log(FG_LOG_INFO, "daemon-stopping", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT",
           NULL);
    d->stopping = true;
    d->parts_running = 2;
    fg_clients_stop(d->clients, clients_done, d);
    d->clients = NULL;
    fg_links_stop(d->links, links_done, d);
    uv_timer_stop(&d->tick);
    d->signals_on = false;
    uv_signal_stop(&d->sigterm);
    uv_signal_stop(&d->sigint);
    uv_close((uv_handle_t *)&d->tick, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
}

static bool user_exists(void *ud, const char *bare)
{
    struct daemon *d = ud;
    return fg_userdir_get(d->users, bare) != NULL;
}

static int remote(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena)
{
    struct daemon *d = ud;
    return d->links ? fg_links_remote(d->links, stanza, arena) : FG_EIO;
}

static enum fg_im_verdict inbound(void *ud, const struct fg_im_remote_info *info,
                                  struct fg_xml_node *stanza)
{
    struct daemon *d = ud;
    return d->links ? fg_links_inbound(d->links, info, stanza) : FG_IM_ALLOW;
}

static bool tls_listener_on(const struct fg_config *c)
{
    return c->listen_c2s || c->listen_c2s_tls || c->listen_s2s || c->listen_s2s_tls;
}

/* Validates what the configuration points at: certificates of every hosted domain when
 * a listener needs them, the trust store, the state directory. */
static int check_files(const struct fg_config *c, char *err, size_t errlen)
{
    if (tls_listener_on(c))
        for (size_t i = 0; c->domains[i]; i++)
            if (fg_cert_check(c->cert_dir, c->domains[i], err, errlen) != FG_OK)
                return FG_EINVAL;
    if (c->ca_file && access(c->ca_file, R_OK) != 0) {
        snprintf(err, errlen, "%s: [tls] ca_file: cannot read %s", c->path, c->ca_file);
        return FG_EIO;
    }
    return FG_OK;
}

static int ensure_secret(struct fg_store *st)
{
    char existing[130], fresh[65];
    int rc = fg_store_dialback_secret_get(st, existing, sizeof existing);
    if (rc != FG_ENOTFOUND)
        return rc;
    if (fg_random_hex(fresh, 32) != FG_OK)
        return FG_EIO;
    rc = fg_store_begin(st);
    /* checked again under the write lock: another process may have made one meanwhile */
    if (rc == FG_OK &&
        fg_store_dialback_secret_get(st, existing, sizeof existing) == FG_ENOTFOUND) {
        rc = fg_store_dialback_secret_set(st, fresh);
        if (rc == FG_OK)
            rc = fg_store_commit(st);
        else
            fg_store_rollback(st);
        if (rc == FG_OK)
            fg_log(FG_LOG_INFO, "dialback-secret-generated", NULL);
    } else if (rc == FG_OK) {
        fg_store_rollback(st);
    }
    memset(existing, 0, sizeof existing);
    memset(fresh, 0, sizeof fresh);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fedgated [--config FILE] [--check-config]\n"
               "Runs in the foreground; logs to standard error unless [server] log_file is "
               "set.\n");
}

int main(int argc, char **argv)
{
    umask(027); /* the store holds password hashes and keys: not for everyone to read */
    const char *config = NULL;
    bool check_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("fedgated %s\n", FG_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "fedgated: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    static struct daemon d;
    char err[1024];
    const char *path = fg_config_locate(config);
    if (fg_config_load(path, &d.cfg, err, sizeof err) != FG_OK) {
        fprintf(stderr, "fedgated: %s\n", err);
        return 1;
    }
    if (check_files(&d.cfg, err, sizeof err) != FG_OK) {
        fprintf(stderr, "fedgated: %s\n", err);
        fg_config_free(&d.cfg);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration ok\n", path);
        fg_config_free(&d.cfg);
        return 0;
    }
    FILE *logf = NULL;
    if (d.cfg.log_file) {
        logf = fopen(d.cfg.log_file, "a");
        if (!logf) {
            fprintf(stderr, "fedgated: %s: [server] log_file: cannot open %s\n", path,
                    d.cfg.log_file);
            fg_config_free(&d.cfg);
            return 1;
        }
        fg_log_set_file(logf);
    }
    fg_log_set_level(d.cfg.log_level);
    mkdir(d.cfg.state_dir, 0750);

    int rc = 1;
    if (fg_store_open(d.cfg.store, d.cfg.base_dir, &d.store, err, sizeof err) != FG_OK) {
        fg_log(FG_LOG_ERROR, "store-error", "store", d.cfg.store, "reason", err, NULL);
        goto out;
    }
    int uerr = FG_OK;
    if (ensure_secret(d.store) != FG_OK ||
        load_snapshot(d.store, &d.partners, &d.gateway, &d.revision) != FG_OK ||
        !(d.users = fg_userdir_load(d.store, &uerr))) {
        fg_log(FG_LOG_ERROR, "store-error", "store", d.cfg.store, "reason", fg_store_error(d.store),
               NULL);
        goto out;
    }

    char hb[32]; /* at once: `partner status` shows a running daemon from the start */
    fg_time_rfc3339(fg_time_now(), hb, sizeof hb);
    if (fg_store_meta_set(d.store, "daemon.heartbeat", hb) != FG_OK) {
        fg_log(FG_LOG_ERROR, "store-error", "store", d.cfg.store, "reason", fg_store_error(d.store),
               NULL);
        goto out;
    }
    struct fg_buf doms = {0};
    for (size_t i = 0; d.cfg.domains[i]; i++) {
        if (i)
            fg_buf_putc(&doms, ',');
        fg_buf_puts(&doms, d.cfg.domains[i]);
    }
    char pid[24], np[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    snprintf(np, sizeof np, "%zu", d.partners.n);
    fg_log(FG_LOG_INFO, "daemon-start", "version", FG_VERSION, "pid", pid, "config", path,
           "domains", fg_buf_str(&doms), "store", fg_store_driver_name(d.store), "partners", np,
           NULL);
    fg_buf_free(&doms);

    d.loop = uv_default_loop();
    /* at once: a SIGTERM during the rest of the start-up is handled when the loop runs */
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    d.signals_on = true;
    if (fg_admin_start(&d.cfg, FG_SOURCE_DIR "/web", err, sizeof err) != FG_OK) {
        fg_log(FG_LOG_ERROR, "admin-error", "listen", d.cfg.listen_admin, "reason", err, NULL);
        goto out;
    }
    d.links = fg_links_start(d.loop, &d.cfg, d.store, d.partners.v, d.partners.n, &d.gateway, err,
                             sizeof err);
    if (!d.links) {
        fg_log(FG_LOG_ERROR, "listen-error", "reason", err, NULL);
        goto out;
    }
    struct fg_im_env env = {
        .domains = d.cfg.domains,
        .store = d.store,
        .loop = d.loop,
        .user_exists = user_exists,
        .remote = remote,
        .inbound = inbound,
        .ud = &d,
    };
    d.im = fg_im_new(&env);
    if (!d.im)
        goto out;
    fg_links_set_im(d.links, d.im);
    d.clients = fg_clients_start(d.loop, &d.cfg, d.im, &d.users, err, sizeof err);
    if (!d.clients) {
        fg_log(FG_LOG_ERROR, "listen-error", "reason", err, NULL);
        goto out;
    }
    d.last_refresh_ms = fg_time_mono_ms(); /* users probe at login; the first round later */
    uv_timer_init(d.loop, &d.tick);
    d.tick.data = &d;
    uv_timer_start(&d.tick, on_tick, 0, TICK_MS);
    uv_run(d.loop, UV_RUN_DEFAULT);
    fg_admin_stop();
    uv_loop_close(d.loop);
    fg_log(FG_LOG_INFO, "daemon-stop", NULL);
    rc = 0;
out:
    if (d.signals_on || d.im || d.links) { /* a failed start: nothing is connected yet */
        if (d.signals_on) {
            uv_close((uv_handle_t *)&d.sigterm, NULL);
            uv_close((uv_handle_t *)&d.sigint, NULL);
        }
        fg_links_stop(d.links, NULL, NULL);
        fg_im_free(d.im);
        uv_run(d.loop, UV_RUN_DEFAULT);
    }
    fg_userdir_free(d.users);
    fg_store_partners_free(d.partners.v, d.partners.n);
    if (d.store)
        fg_store_close(d.store);
    fg_config_free(&d.cfg);
    if (logf)
        fclose(logf);
    return rc;
}
