/* auth.c - in-memory sessions and the login rate limiter of the admin listener. Session
 * ids are kept only as SHA-256 hashes, so a memory dump does not hand out live cookies.
 * Times are monotonic milliseconds: a clock change neither ends nor extends a session. */
#include "auth.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_FAILURES_KEPT 32 /* per key; more than any sensible login_failures */
#define LIMITER_SLOTS 4096   /* distinct addresses/accounts tracked at once */

struct slot {
    bool live;
    char hash[65]; /* SHA-256 hex of the session id */
    char user[FG_ADMIN_NAME_MAX + 1];
    char csrf[FG_ADMIN_CSRF_LEN + 1];
    uint64_t created, used; /* monotonic ms */
};

struct failures {
    char key[FG_ADMIN_NAME_MAX + 72]; /* "a:ADDRESS" or "u:USER"; "" when unused */
    uint64_t at[MAX_FAILURES_KEPT];   /* ring of failure times, monotonic ms */
    size_t n, next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fg_admin_auth_limits limits;
static struct slot *slots;
static struct failures *fails;

void fg_admin_auth_defaults(struct fg_admin_auth_limits *l)
{
    l->session_idle = 30 * 60;
    l->session_max = 8 * 3600;
    l->login_window = 5 * 60;
    l->login_failures = 5;
    l->max_sessions = 1024;
}

void fg_admin_auth_init(const struct fg_admin_auth_limits *l)
{
    pthread_mutex_lock(&lock);
    limits = *l;
    if (limits.login_failures > MAX_FAILURES_KEPT)
        limits.login_failures = MAX_FAILURES_KEPT;
    if (limits.login_failures < 1)
        limits.login_failures = 1;
    if (limits.max_sessions < 1)
        limits.max_sessions = 1;
    fg_free(slots);
    fg_free(fails);
    slots = fg_calloc(limits.max_sessions, sizeof *slots);
    fails = fg_calloc(LIMITER_SLOTS, sizeof *fails);
    pthread_mutex_unlock(&lock);
}

void fg_admin_auth_reset(void)
{
    pthread_mutex_lock(&lock);
    if (slots)
        memset(slots, 0, limits.max_sessions * sizeof *slots);
    fg_free(slots);
    fg_free(fails);
    slots = NULL;
    fails = NULL;
    pthread_mutex_unlock(&lock);
}

static void hash_sid(const char *sid, char out[65])
{
    fg_sha256_hex(sid, strlen(sid), out);
}

static bool expired(const struct slot *s, uint64_t now)
{
    return now - s->used >= (uint64_t)limits.session_idle * 1000u ||
           now - s->created >= (uint64_t)limits.session_max * 1000u;
}

static void clear_slot(struct slot *s)
{
    memset(s, 0, sizeof *s);
}

int fg_admin_session_create(const char *user, char sid[FG_ADMIN_SID_LEN + 1],
                            char csrf[FG_ADMIN_CSRF_LEN + 1])
{
    if (strlen(user) > FG_ADMIN_NAME_MAX)
        return FG_EINVAL;
    if (fg_random_hex(sid, FG_ADMIN_SID_LEN / 2) != FG_OK ||
        fg_random_hex(csrf, FG_ADMIN_CSRF_LEN / 2) != FG_OK)
        return FG_EIO;
    uint64_t now = fg_time_mono_ms();
    pthread_mutex_lock(&lock);
    if (!slots) {
        pthread_mutex_unlock(&lock);
        return FG_EIO;
    }
    /* a free or expired slot, else the least recently used one */
    struct slot *pick = NULL;
    for (size_t i = 0; i < limits.max_sessions; i++) {
        struct slot *s = &slots[i];
        if (!s->live || expired(s, now)) {
            pick = s;
            break;
        }
        if (!pick || s->used < pick->used)
            pick = s;
    }
    if (!pick) {
        pthread_mutex_unlock(&lock);
        return FG_EIO;
    }
    clear_slot(pick);
    pick->live = true;
    hash_sid(sid, pick->hash);
    snprintf(pick->user, sizeof pick->user, "%s", user);
    memcpy(pick->csrf, csrf, FG_ADMIN_CSRF_LEN + 1);
    pick->created = pick->used = now;
    pthread_mutex_unlock(&lock);
    return FG_OK;
}

/* The live slot with this hash, or NULL. Call with the lock held. */
static struct slot *find(const char *hash)
{
    for (size_t i = 0; slots && i < limits.max_sessions; i++)
        if (slots[i].live && strcmp(slots[i].hash, hash) == 0)
            return &slots[i];
    return NULL;
}

int fg_admin_session_get(const char *sid, struct fg_admin_session *out)
{
    if (strlen(sid) != FG_ADMIN_SID_LEN)
        return FG_ENOTFOUND;
    char hash[65];
    hash_sid(sid, hash);
    uint64_t now = fg_time_mono_ms();
    int rc = FG_ENOTFOUND;
    pthread_mutex_lock(&lock);
    struct slot *s = find(hash);
    if (s && expired(s, now)) {
        clear_slot(s);
    } else if (s) {
        s->used = now;
        memcpy(out->user, s->user, sizeof out->user);
        memcpy(out->csrf, s->csrf, sizeof out->csrf);
        rc = FG_OK;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void fg_admin_session_drop(const char *sid)
{
    char hash[65];
    hash_sid(sid, hash);
    pthread_mutex_lock(&lock);
    struct slot *s = find(hash);
    if (s)
        clear_slot(s);
    pthread_mutex_unlock(&lock);
}

void fg_admin_session_drop_user(const char *user, const char *keep_sid)
{
    char keep[65] = "";
    if (keep_sid)
        hash_sid(keep_sid, keep);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; slots && i < limits.max_sessions; i++)
        if (slots[i].live && strcmp(slots[i].user, user) == 0 && strcmp(slots[i].hash, keep) != 0)
            clear_slot(&slots[i]);
    pthread_mutex_unlock(&lock);
}

size_t fg_admin_session_count(void)
{
    uint64_t now = fg_time_mono_ms();
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; slots && i < limits.max_sessions; i++)
        if (slots[i].live && !expired(&slots[i], now))
            n++;
    pthread_mutex_unlock(&lock);
    return n;
}

static void make_key(char *out, size_t len, char kind, const char *v)
{
    snprintf(out, len, "%c:%s", kind, v);
}

/* Failures of key within the window. Call with the lock held. */
static size_t recent(const struct failures *f, uint64_t now)
{
    size_t n = 0;
    uint64_t window = (uint64_t)limits.login_window * 1000u;
    for (size_t i = 0; i < f->n; i++)
        if (now - f->at[i] < window)
            n++;
    return n;
}

static struct failures *find_failures(const char *key)
{
    for (size_t i = 0; fails && i < LIMITER_SLOTS; i++)
        if (fails[i].key[0] && strcmp(fails[i].key, key) == 0)
            return &fails[i];
    return NULL;
}

bool fg_admin_login_limited(const char *address, const char *user)
{
    char ka[sizeof fails->key], ku[sizeof fails->key];
    make_key(ka, sizeof ka, 'a', address);
    make_key(ku, sizeof ku, 'u', user);
    uint64_t now = fg_time_mono_ms();
    bool limited = false;
    pthread_mutex_lock(&lock);
    const struct failures *fa = find_failures(ka), *fu = find_failures(ku);
    if ((fa && recent(fa, now) >= (size_t)limits.login_failures) ||
        (fu && recent(fu, now) >= (size_t)limits.login_failures))
        limited = true;
    pthread_mutex_unlock(&lock);
    return limited;
}

/* Records one failure for key, reusing the stalest entry when the table is full. */
static void add_failure(const char *key, uint64_t now)
{
    struct failures *f = find_failures(key);
    if (!f) {
        uint64_t stalest = UINT64_MAX;
        for (size_t i = 0; i < LIMITER_SLOTS; i++) {
            struct failures *c = &fails[i];
            if (!c->key[0] || recent(c, now) == 0) {
                f = c;
                break;
            }
            uint64_t last = c->at[(c->next + MAX_FAILURES_KEPT - 1) % MAX_FAILURES_KEPT];
            if (last < stalest) {
                stalest = last;
                f = c;
            }
        }
        memset(f, 0, sizeof *f);
        snprintf(f->key, sizeof f->key, "%s", key);
    }
    f->at[f->next] = now;
    f->next = (f->next + 1) % MAX_FAILURES_KEPT;
    if (f->n < MAX_FAILURES_KEPT)
        f->n++;
}

void fg_admin_login_failed(const char *address, const char *user)
{
    char ka[sizeof fails->key], ku[sizeof fails->key];
    make_key(ka, sizeof ka, 'a', address);
    make_key(ku, sizeof ku, 'u', user);
    uint64_t now = fg_time_mono_ms();
    pthread_mutex_lock(&lock);
    if (fails) {
        add_failure(ka, now);
        add_failure(ku, now);
    }
    pthread_mutex_unlock(&lock);
}

void fg_admin_login_succeeded(const char *user)
{
    char ku[sizeof fails->key];
    make_key(ku, sizeof ku, 'u', user);
    pthread_mutex_lock(&lock);
    struct failures *f = find_failures(ku);
    if (f)
        memset(f, 0, sizeof *f);
    pthread_mutex_unlock(&lock);
}

bool fg_admin_secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}
