/* fuzz_domain.c - libFuzzer target for domain-name normalisation and the partner JSON
 * reader: arbitrary bytes must give a result or FG_EINVAL, never a crash or a leak.
 * clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc fuzz/fuzz_domain.c
 *   src/core/{alloc,buf,err}.c src/policy/{policy,json}.c -lidn2 -ljansson */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "policy/json.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fg_strndup((const char *)data, size);
    char out[FG_DOMAIN_MAX + 1];
    const char *why = NULL;
    if (fg_domain_normalize(s, out, sizeof out, &why) == 0) {
        /* A normalised name is a fixed point, and its Unicode form maps back to it. */
        char again[FG_DOMAIN_MAX + 1];
        if (fg_domain_normalize(out, again, sizeof again, &why) != 0 || strcmp(out, again))
            __builtin_trap();
        char *u = fg_domain_to_unicode(out);
        if (fg_domain_normalize(u, again, sizeof again, &why) != 0 || strcmp(out, again))
            __builtin_trap();
        fg_free(u);
    }

    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (j) {
        struct fg_partner p;
        char err[256];
        const char *field = NULL;
        fg_partner_init(&p, "a.test");
        fg_partner_apply_json(&p, j, size & 1, err, sizeof err, &field);
        json_t *back = fg_partner_to_json(&p);
        json_decref(back);
        fg_partner_clear(&p);
        json_decref(j);
    }
    fg_free(s);
    return 0;
}
