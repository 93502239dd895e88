/* fuzz_srv.c - libFuzzer target for the pure parts of net/dns.c (SRV rdata, XEP-0368 ordering,
 * host:port) and the DNS-ID rule of xmpp/certid.c: results must keep their invariants.
 * clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
 *   src/core/{alloc,buf,clock,err,log}.c src/policy/{policy,json}.c src/net/dns.c
 *   src/xmpp/certid.c fuzz/fuzz_srv.c $(pkg-config --cflags --libs libuv openssl libidn2
 *   jansson) -lunbound -o /tmp/fuzz_srv */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "net/dns.h"
#include "xmpp/certid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t from_input(void *ctx)
{
    uint32_t *state = ctx;
    *state = *state * 1103515245u + 12345u;
    return *state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* one SRV rdata per chunk: [len][bytes...], the top bit of len picks the service */
    struct fg_dns_srv v[2 * FG_DNS_MAX_SRV];
    size_t n = 0, i = 0;
    while (i < size && n < sizeof v / sizeof v[0]) {
        size_t len = data[i] & 0x7f;
        bool tls = data[i] & 0x80;
        i++;
        if (len > size - i)
            len = size - i;
        if (fg_dns_srv_parse(data + i, len, tls, &v[n]) == 0) {
            size_t tl = strlen(v[n].target);
            if (tl == 0 || tl > FG_DNS_NAME_MAX)
                __builtin_trap();
            n++;
        }
        i += len;
    }
    size_t before = n;
    uint32_t seed = (uint32_t)size;
    enum fg_dns_srv_verdict verdict = fg_dns_srv_order(v, &n, from_input, &seed);
    if (n > before || (verdict == FG_DNS_SRV_RECORDS) != (n > 0))
        __builtin_trap();
    for (size_t k = 0; k < n; k++) {
        if (strcmp(v[k].target, ".") == 0 || v[k].port == 0)
            __builtin_trap();
        if (k > 0 && v[k - 1].priority > v[k].priority)
            __builtin_trap();
    }

    char *s = fg_strndup((const char *)data, size);
    char host[FG_DNS_NAME_MAX + 1];
    uint16_t port = 0;
    char err[256];
    if (fg_dns_parse_hostport(s, 5269, host, sizeof host, &port, err, sizeof err) == 0) {
        if (!host[0] || port == 0)
            __builtin_trap();
    }
    /* a name never matches itself with a wildcard inside, and "*.X" never matches X */
    char ref[FG_DNS_NAME_MAX + 8];
    if (fg_dns_parse_hostport(s, 1, host, sizeof host, &port, err, sizeof err) == 0) {
        snprintf(ref, sizeof ref, "*.%s", host);
        if (fg_certid_dns_id_matches(ref, host))
            __builtin_trap();
    }
    (void)fg_certid_dns_id_matches(s, "a.b.test");
    fg_free(s);
    return 0;
}
