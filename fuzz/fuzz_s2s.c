/* fuzz_s2s.c - libFuzzer target for the server-to-server stream machines (src/xmpp/s2s.c):
 * arbitrary peer bytes into an inbound or outbound stream under any partner settings,
 * with STARTTLS completed, dialback answered and the clock, re-checks and sends driven
 * from the input. It aborts on bytes sent after the close and on unbounded memory; the
 * sanitizers catch the rest. Build and run like fuzz_xml (fuzz/README.md):
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=undefined -I src src/core/alloc.c src/core/buf.c \
 *     src/core/log.c src/core/err.c src/core/clock.c src/core/crypto.c src/xml/arena.c \
 *     src/xml/parser.c src/xml/stanza.c src/policy/policy.c src/policy/wire.c \
 *     src/xmpp/s2s.c src/xmpp/dialback.c src/xmpp/sasl.c \
 *     fuzz/fuzz_s2s.c $(pkg-config --cflags --libs expat libidn2 openssl libgsasl \
 *     libargon2) -o /tmp/fuzz_s2s
 *   /tmp/fuzz_s2s -max_total_time=600 -dict=fuzz/xml.dict -max_len=8192 CORPUS fuzz/corpus/s2s
 *
 * Input: byte 0 direction, TLS, SASL, dialback, certificate and direct-TLS choices; byte
 * 1 the feed's piece size; the rest is what the peer sends, where a 0x01 byte is an event
 * (the next byte says which: tick, recheck with changed settings, send a stanza, add a
 * pair, a verify request) rather than data. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "policy/policy.h"
#include "xml/stanza.h"
#include "xmpp/dialback.h"
#include "xmpp/s2s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    struct fg_s2s *s;
    struct fg_partner part;
    bool closed, tls_pending, cert;
    uint8_t verdict;
    size_t sent;
    struct fg_dialback_secret secret;
};

static void io_send(void *ud, const char *d, size_t n)
{
    struct ctx *c = ud;
    if (c->closed) {
        fprintf(stderr, "fuzz_s2s: bytes sent after close\n");
        abort();
    }
    c->sent += n;
    (void)d;
}

static void io_start_tls(void *ud)
{
    ((struct ctx *)ud)->tls_pending = true;
}

static void io_close(void *ud)
{
    ((struct ctx *)ud)->closed = true;
}

static const struct fg_partner *io_lookup(void *ud, const char *domain)
{
    struct ctx *c = ud;
    if (strcmp(domain, "x.test") == 0)
        return NULL;
    return &c->part; /* every other domain belongs to the one partner */
}

static bool io_cert(void *ud, const char *domain, const char **why)
{
    (void)domain;
    *why = "fuzz";
    return ((struct ctx *)ud)->cert;
}

static int io_key(void *ud, const char *r, const char *o, const char *id, char *out, size_t n)
{
    return fg_dialback_key(&((struct ctx *)ud)->secret, r, o, id, out, n);
}

static void io_verify(void *ud, const char *from, const char *to, const char *id, const char *k)
{
    struct ctx *c = ud;
    (void)id;
    (void)k;
    if (c->verdict % 5 < 4)
        fg_s2s_in_dialback_result(c->s, from, to, (enum fg_s2s_verdict)(c->verdict % 4));
}

static void io_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    (void)ud;
    (void)n;
    fg_arena_free(a);
}

static char *const hosted[] = {"a.test", "a2.test", NULL};

static void event(struct ctx *c, uint8_t what, uint64_t *now)
{
    switch (what % 6) {
    case 0:
        *now += (uint64_t)(what >> 3) * 7000;
        fg_s2s_tick(c->s, *now);
        break;
    case 1:
        c->part.tls = (enum fg_neg)((what >> 3) % 3);
        c->part.sasl = (enum fg_neg)((what >> 5) % 3);
        c->part.dialback = what & 0x80;
        fg_s2s_recheck(c->s);
        break;
    case 2: {
        struct fg_arena *a = fg_arena_new(0);
        struct fg_xml_node *m = fg_xml_element_new(a, "message", FG_XML_NS_CLIENT);
        fg_xml_set_attr(a, m, "from", what & 8 ? "u@a.test/r" : "u@a2.test");
        fg_xml_set_attr(a, m, "to", what & 16 ? "v@b.test" : "v@b2.test");
        fg_s2s_out_send_stanza(c->s, m);
        fg_arena_free(a);
        break;
    }
    case 3:
        fg_s2s_out_add_pair(c->s, what & 8 ? "a2.test" : "a.test",
                            what & 16 ? "b2.test" : "b.test");
        break;
    case 4:
        fg_s2s_out_verify(c->s, "a.test", "b.test", what & 8 ? "id1" : "id2", "key");
        break;
    default:
        c->verdict = what;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fg_log_set_level(FG_LOG_ERROR);
    struct ctx c;
    memset(&c, 0, sizeof c);
    fg_dialback_secret_init(&c.secret, "fuzz", 4);
    uint8_t mode = data[0];
    size_t piece = data[1] ? data[1] : 4096;
    fg_partner_init(&c.part, "b.test");
    fg_strv_push(&c.part.additional, "b2.test");
    c.part.subdomains = true;
    c.part.tls = (enum fg_neg)((mode >> 1) % 3);
    c.part.sasl = (enum fg_neg)((mode >> 3) % 3);
    c.part.dialback = mode & 0x20;
    c.part.keepalive = mode & 0x80;
    c.cert = mode & 0x40;
    bool out = mode & 1;
    struct fg_s2s_config cfg = {.domains = hosted,
                                .establishment_timeout_s = 60,
                                .inactivity_timeout_s = 600,
                                .keepalive_interval_s = 30,
                                .max_pairs = 8};
    struct fg_s2s_io io = {.ud = &c,
                           .send = io_send,
                           .start_tls = io_start_tls,
                           .close = io_close,
                           .lookup_partner = io_lookup,
                           .cert_matches = io_cert,
                           .dialback_key = io_key,
                           .verify_dialback = io_verify,
                           .stanza = io_stanza};
    bool direct = (mode & 0x80) && c.part.tls != FG_NEG_NOT_SUPPORTED;
    if (out) {
        if (mode & 0x10)
            c.s = fg_s2s_verify_new(&cfg, &io, "a.test", "b.test", &c.part, direct);
        else
            c.s = fg_s2s_out_new(&cfg, &io, "a.test", "b.test", &c.part, direct);
    } else {
        c.s = fg_s2s_in_new(&cfg, &io, direct, "fuzz");
    }
    if (!c.s)
        abort();
    struct fg_s2s_tls t = {.version = "TLSv1.3", .local_cert = c.cert};
    if (direct)
        fg_s2s_tls_ready(c.s, &t);
    fg_s2s_start(c.s);
    uint64_t now = 0;
    fg_s2s_tick(c.s, now);
    size_t i = 2;
    while (i < size && !c.closed) {
        if (data[i] == 1) {
            if (i + 1 >= size)
                break;
            event(&c, data[i + 1], &now);
            i += 2;
            continue;
        }
        size_t n = 0;
        while (i + n < size && n < piece && data[i + n] != 1)
            n++;
        fg_s2s_feed(c.s, (const char *)data + i, n);
        i += n;
        if (c.tls_pending) {
            c.tls_pending = false;
            fg_s2s_tls_ready(c.s, &t);
        }
        if (fg_s2s_memory(c.s) > (2u << 20)) {
            fprintf(stderr, "fuzz_s2s: stream holds %zu bytes\n", fg_s2s_memory(c.s));
            abort();
        }
    }
    struct fg_s2s_info info;
    fg_s2s_get_info(c.s, &info);
    fg_s2s_close(c.s, NULL);
    fg_s2s_free(c.s);
    fg_partner_clear(&c.part);
    fg_dialback_secret_clear(&c.secret);
    return 0;
}

#ifdef FG_FUZZ_STANDALONE
/* Replays files without libFuzzer: fuzz_s2s FILE... */
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        struct fg_buf b = {0};
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            fg_buf_append(&b, chunk, n);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)b.data, b.len);
        fg_buf_free(&b);
    }
    return 0;
}
#endif
