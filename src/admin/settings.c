/* settings.c - gateway settings (keys, kinds and ranges from the policy module's table;
 * the dialback secret is neither shown nor settable here) and the audit log: its records
 * for API changes and GET /audit with filters. */
#include "settings.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/json.h"
#include "store/store.h"

#include <fnmatch.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_DEFAULT_LIMIT 1000
#define AUDIT_MAX_LIMIT 100000

static char *dump_or_null(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

int fg_admin_audit(struct fg_admin_ctx *c, struct fg_admin_req *r, const char *action,
                   const char *object, json_t *before, json_t *after)
{
    struct fg_audit a = {0};
    a.time = fg_time_now();
    a.actor = r->who.actor;
    a.address = r->address;
    a.action = (char *)action;
    a.object = (char *)object;
    a.before = dump_or_null(before);
    a.after = dump_or_null(after);
    int rc = fg_store_audit_add(c->st, &a);
    free(a.before);
    free(a.after);
    if (rc == FG_OK)
        fg_log(FG_LOG_INFO, "admin-change", "actor", r->who.actor, "address", r->address, "action",
               action, "object", object, NULL);
    return rc;
}

void fg_admin_gateway_get(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    struct fg_gateway g;
    fg_admin_lock(c);
    int rc = fg_store_gateway_get(c->st, &g);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "gateway settings");
        return;
    }
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "gateway", fg_gateway_to_json(&g)));
}

static const struct fg_gateway_key *find_key(const char *name)
{
    for (size_t i = 0; i < fg_gateway_nkeys; i++)
        if (strcmp(fg_gateway_keys[i].name, name) == 0)
            return &fg_gateway_keys[i];
    return NULL;
}

/* Applies one member of the merge patch to g: null restores the default; otherwise the
 * JSON type must fit the key's kind and the policy module checks the range. */
static bool apply_key(struct fg_admin_req *r, struct fg_gateway *g, const char *key, json_t *v)
{
    const char *f[] = {key, NULL};
    if (strcmp(key, "dialback_secret") == 0) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                             "the dialback secret is never shown or set here: rotate it with "
                             "fedgatectl gateway rotate-dialback-secret");
        return false;
    }
    const struct fg_gateway_key *k = find_key(key);
    if (!k) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                             "unknown gateway setting \"%.64s\"", key);
        return false;
    }
    char text[64], err[256];
    if (json_is_null(v)) {
        struct fg_gateway def;
        fg_gateway_defaults(&def);
        fg_gateway_get_text(&def, key, text, sizeof text);
    } else if (k->kind == FG_GW_INT && json_is_integer(v)) {
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
    } else if (k->kind == FG_GW_BOOL && json_is_boolean(v)) {
        snprintf(text, sizeof text, "%s", json_is_true(v) ? "true" : "false");
    } else if (k->kind == FG_GW_UNLISTED && json_is_string(v) && json_string_length(v) < 32) {
        snprintf(text, sizeof text, "%s", json_string_value(v));
    } else {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f, "%s must be %s",
                             key,
                             k->kind == FG_GW_INT    ? "an integer"
                             : k->kind == FG_GW_BOOL ? "true or false"
                                                     : "\"block\" or a partner type");
        return false;
    }
    if (fg_gateway_set_text(g, key, text, err, sizeof err) != FG_OK) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f, "%s", err);
        return false;
    }
    return true;
}

void fg_admin_gateway_patch(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    if (!r->json) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                             "a JSON object is required as the body");
        return;
    }
    /* values are checked on the defaults first, before the store is touched */
    struct fg_gateway g, old;
    fg_gateway_defaults(&g);
    const char *key;
    json_t *v;
    json_object_foreach(r->json, key, v)
    {
        if (!apply_key(r, &g, key, v))
            return;
    }
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc == FG_OK && (rc = fg_store_gateway_get(c->st, &old)) != FG_OK)
        fg_store_rollback(c->st);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "gateway settings");
        goto out;
    }
    g = old;
    json_object_foreach(r->json, key, v)
    {
        if (!apply_key(r, &g, key, v)) {
            fg_store_rollback(c->st);
            goto out;
        }
    }
    if (memcmp(&g, &old, sizeof g) == 0) {
        fg_store_rollback(c->st); /* nothing changed: nothing to write or audit */
    } else {
        rc = fg_store_gateway_put(c->st, &g);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "gateway.update", "gateway", fg_gateway_to_json(&old),
                                fg_gateway_to_json(&g));
        if (rc == FG_OK)
            rc = fg_store_commit(c->st);
        if (rc != FG_OK) {
            fg_store_rollback(c->st);
            fg_admin_reply_store_error(c, r, rc, "gateway settings");
            goto out;
        }
    }
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "gateway", fg_gateway_to_json(&g)));
out:
    fg_admin_unlock(c);
}

/* before/after are stored as JSON text; they go out as JSON again. */
static json_t *parsed_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_loads(s, 0, NULL);
    return j ? j : json_string(s);
}

static json_t *record_to_json(const struct fg_audit *a)
{
    char ts[32];
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "id", (json_int_t)a->id, "time",
                     fg_time_rfc3339(a->time, ts, sizeof ts), "actor", a->actor ? a->actor : "",
                     "address", a->address ? a->address : "", "action", a->action ? a->action : "",
                     "object", a->object ? a->object : "", "before", parsed_or_null(a->before),
                     "after", parsed_or_null(a->after));
}

/* A filter is a glob (fnmatch); no filter matches everything. */
static bool pass(const char *glob, const char *v)
{
    return !glob || fnmatch(glob, v ? v : "", 0) == 0;
}

/* GET /audit?since=TIME&limit=N&actor=GLOB&action=GLOB&object=GLOB, newest first. */
void fg_admin_audit_list(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const names[] = {"actor", "action", "object"};
    char since_s[64], limit_s[16], globs[3][512];
    const char *glob[3] = {NULL, NULL, NULL};
    int64_t since = 0;
    long long limit = AUDIT_DEFAULT_LIMIT;
    int q = fg_admin_query(r, "since", since_s, sizeof since_s);
    if (q < 0 || (q > 0 && fg_time_parse(since_s, &since) != FG_OK)) {
        static const char *const f[] = {"since", NULL};
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                             "since: expected RFC 3339 (2026-11-26T12:00:00Z) or a date "
                             "(2026-11-26)");
        return;
    }
    q = fg_admin_query(r, "limit", limit_s, sizeof limit_s);
    if (q != 0) {
        char *end = NULL;
        limit = q > 0 ? strtoll(limit_s, &end, 10) : 0;
        if (q < 0 || !end || *end || end == limit_s || limit < 1 || limit > AUDIT_MAX_LIMIT) {
            static const char *const f[] = {"limit", NULL};
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                                 "limit: expected an integer from 1 to %d", AUDIT_MAX_LIMIT);
            return;
        }
    }
    for (int i = 0; i < 3; i++) {
        q = fg_admin_query(r, names[i], globs[i], sizeof globs[i]);
        if (q < 0) {
            const char *f[] = {names[i], NULL};
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                                 "%s: malformed or longer than %zu bytes", names[i],
                                 sizeof globs[i] - 1);
            return;
        }
        glob[i] = q ? globs[i] : NULL;
    }
    bool filtered = glob[0] || glob[1] || glob[2];
    struct fg_audit *recs = NULL;
    size_t n = 0;
    fg_admin_lock(c);
    /* with filters the limit applies to what passes them, so read everything since */
    int rc = fg_store_audit_list(c->st, since, filtered ? 0 : (size_t)limit, &recs, &n);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "audit log");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n && json_array_size(arr) < (size_t)limit; i++)
        if (pass(glob[0], recs[i].actor) && pass(glob[1], recs[i].action) &&
            pass(glob[2], recs[i].object))
            json_array_append_new(arr, record_to_json(&recs[i]));
    fg_store_audits_free(recs, n);
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "audit", arr));
}
