/* status.c - the link status document of SPEC section 7, built from what fedgated keeps in
 * store meta ("daemon.heartbeat", "status.links"); shared by fedgatectl and the HTTP API. */
#include "policy/json.h"
#include "core/clock.h"
#include "core/err.h"

#include <string.h>

json_t *fg_link_status_json(const char *heartbeat, const char *links,
                            const struct fg_partner *partners, size_t n, const char *only,
                            int64_t now)
{
    int64_t t = 0;
    bool known = heartbeat && fg_time_parse(heartbeat, &t) == FG_OK;
    int64_t age = now - t;
    bool running = known && age <= 10 && age >= -10;
    char ts[32];
    json_t *daemon =
        json_pack("{s:b,s:o}", "running", running, "heartbeat",
                  known ? json_string(fg_time_rfc3339(t, ts, sizeof ts)) : json_null());
    json_t *doc = links ? json_loads(links, 0, NULL) : NULL;
    json_t *parts = doc ? json_object_get(doc, "partners") : NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *d = partners[i].domain;
        if (only && strcmp(only, d) != 0)
            continue;
        json_t *e = parts ? json_object_get(parts, d) : NULL;
        json_t *streams = json_object_get(e, "streams");
        json_t *err = json_object_get(e, "last_error");
        json_t *refused = json_object_get(e, "refused_stanzas");
        json_array_append_new(
            arr,
            json_pack("{s:s,s:o,s:O,s:I}", "domain", d, "streams",
                      running && json_is_array(streams) ? json_deep_copy(streams) : json_array(),
                      "last_error", json_is_object(err) ? err : json_null(), "refused_stanzas",
                      (json_int_t)(json_is_integer(refused) ? json_integer_value(refused) : 0)));
    }
    json_decref(doc);
    return json_pack("{s:o,s:o}", "daemon", daemon, "partners", arr);
}
