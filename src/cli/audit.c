/* audit.c - fedgatectl audit [--since TIME] [--limit N]: the audit log, newest first,
 * as a table or as {"audit": [RECORD...]} with before/after as JSON values. */
#include "cli.h"
#include "core/clock.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *parsed_or_null(const char *text)
{
    if (!text)
        return json_null();
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    return j ? j : json_string(text);
}

int fg_cli_audit_cmd(struct fg_cli *c, int argc, char **argv)
{
    static const struct fg_flag_spec spec[] = {
        {"since", true, false}, {"limit", true, false}, {NULL, false, false}};
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, spec, 0, 0, "audit [--since TIME] [--limit N]", &a);
    if (rc)
        return rc;
    int64_t since = 0;
    long limit = 0;
    const char *s = fg_cli_flag(&a, "since"), *l = fg_cli_flag(&a, "limit");
    if (s && fg_time_parse(s, &since) != FG_OK)
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, NULL,
                            "invalid time '%s' for --since: expected RFC 3339 "
                            "(2026-11-26T12:00:00Z) or a date (2026-11-26)",
                            s);
    if (l) {
        char *end;
        limit = strtol(l, &end, 10);
        if (!*l || *end || limit < 1 || limit > 100000)
            return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, NULL,
                                "invalid value '%s' for --limit: expected 1 to 100000", l);
    }
    if ((rc = fg_cli_open(c)))
        return rc;
    struct fg_audit *v = NULL;
    size_t n = 0;
    int err = fg_store_audit_list(c->store, since, (size_t)limit, &v, &n);
    if (err != FG_OK)
        return fg_cli_store_error(c, err, "audit log");
    json_t *arr = json_array();
    if (!c->json)
        printf("%-20s %-16s %-10s %-32s %s\n", "TIME", "ACTOR", "ADDRESS", "ACTION", "OBJECT");
    for (size_t i = 0; i < n; i++) {
        char ts[32];
        fg_time_rfc3339(v[i].time, ts, sizeof ts);
        if (c->json)
            json_array_append_new(
                arr, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "id", (json_int_t)v[i].id,
                               "time", ts, "actor", v[i].actor, "address", v[i].address,
                               "action", v[i].action, "object", v[i].object, "before",
                               parsed_or_null(v[i].before), "after", parsed_or_null(v[i].after)));
        else
            printf("%-20s %-16s %-10s %-32s %s\n", ts, v[i].actor, v[i].address, v[i].action,
                   v[i].object);
    }
    fg_cli_print_json(c, json_pack("{s:o}", "audit", arr));
    fg_store_audits_free(v, n);
    return FG_EXIT_OK;
}
