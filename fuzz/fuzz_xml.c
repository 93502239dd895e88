/* fuzz_xml.c - libFuzzer target for the XMPP stream parser (src/xml). It checks more
 * than "no crash": every stanza must survive serialize -> parse unchanged, and the
 * same input fed in one piece and in random pieces (with trims in between) must give
 * the same events. Build and run: see fuzz/README.md. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "xml/arena.h"
#include "xml/parser.h"
#include "xml/stanza.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct fg_xml_parser *p;
    struct fg_buf log;
    struct fg_xml_scope scope;
    char content_ns[256];
    bool restart; /* a <restart/> stanza asked for a stream restart */
    bool policy;  /* a policy-violation happened */
};

static void die(const char *what, const struct fg_buf *a, const struct fg_buf *b)
{
    fprintf(stderr, "fuzz_xml: %s\n--- a\n%s\n--- b\n%s\n", what, a ? fg_buf_str(a) : "",
            b ? fg_buf_str(b) : "");
    abort();
}

static void on_header(void *ud, const struct fg_xml_header *h)
{
    struct run *r = ud;
    fg_buf_printf(&r->log, "H %s|%s|%s|%s|%s|%s|%s|%u\n", h->to ? h->to : "-",
                  h->from ? h->from : "-", h->id ? h->id : "-", h->version ? h->version : "-",
                  h->lang ? h->lang : "-", h->content_ns ? h->content_ns : "-", h->prefix,
                  h->ndecls);
    snprintf(r->content_ns, sizeof r->content_ns, "%s", h->content_ns ? h->content_ns : "");
    fg_xml_scope_init(&r->scope, r->content_ns);
    fg_xml_scope_bind(&r->scope, "db", FG_XML_NS_DIALBACK);
}

struct catcher {
    struct fg_xml_node *n;
    struct fg_arena *a;
};

static void catch_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct catcher *c = ud;
    if (c->n) {
        fg_arena_free(a);
        return;
    }
    c->n = n;
    c->a = a;
}

/* serialize -> parse must give the same tree */
static void round_trip(const struct run *r, const struct fg_xml_node *n, const struct fg_buf *ser)
{
    struct fg_buf doc = {0};
    fg_xml_serialize_header(&doc, &r->scope, true, NULL, NULL, NULL, NULL, NULL);
    fg_buf_append(&doc, ser->data, ser->len);
    struct fg_xml_limits lim = {.max_stanza = 1 << 24, .max_depth = 4096, .max_attrs = 100000};
    struct catcher c = {0};
    struct fg_xml_callbacks cb = {.stanza = catch_stanza};
    struct fg_xml_parser *q = fg_xml_parser_new(&lim, &cb, &c);
    if (fg_xml_parser_feed(q, doc.data, doc.len, NULL) != 0 || !c.n)
        die("serialized stanza does not parse", &doc, NULL);
    if (!fg_xml_equal(n, c.n))
        die("round trip changed the stanza", &doc, NULL);
    fg_arena_free(c.a);
    fg_xml_parser_free(q);
    fg_buf_free(&doc);
}

static void on_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct run *r = ud;
    struct fg_buf s = {0};
    fg_xml_serialize(&s, n, &r->scope);
    fg_buf_puts(&r->log, "S ");
    fg_buf_append(&r->log, s.data, s.len);
    fg_buf_putc(&r->log, '\n');
    round_trip(r, n, &s);
    struct fg_xml_node *c = fg_xml_copy(a, n);
    if (!fg_xml_equal(c, n))
        die("copy differs", &s, NULL);
    fg_buf_free(&s);
    if (strcmp(n->name, "restart") == 0) {
        r->restart = true;
        fg_xml_parser_stop(r->p);
    }
    fg_arena_free(a);
}

static void on_close(void *ud)
{
    struct run *r = ud;
    fg_buf_puts(&r->log, "C\n");
}

static void on_error(void *ud, enum fg_xml_cond c, const char *detail)
{
    struct run *r = ud;
    (void)detail;
    if (c == FG_XML_COND_POLICY_VIOLATION)
        r->policy = true;
    fg_buf_printf(&r->log, "E %s\n", fg_xml_cond_name(c));
}

static const struct fg_xml_callbacks callbacks = {on_header, on_stanza, on_close, on_error};

/* Feeds data in pieces whose sizes come from seed (0 = one piece). Restarts the stream
 * after <restart/>, stops at the end of the stream or the first error. */
static void run(struct run *r, const struct fg_xml_limits *lim, const uint8_t *data, size_t size,
                uint32_t seed)
{
    memset(r, 0, sizeof *r);
    r->p = fg_xml_parser_new(lim, &callbacks, r);
    fg_xml_scope_init(&r->scope, NULL);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            size_t want = 1 + (seed >> 16) % 64;
            if (want < n)
                n = want;
            if ((seed >> 8) % 7 == 0)
                (void)fg_xml_parser_trim(r->p);
        }
        size_t consumed = 0;
        int rc = fg_xml_parser_feed(r->p, data + off, n, &consumed);
        if (rc != 0)
            break;
        off += consumed;
        enum fg_xml_state st = fg_xml_parser_state(r->p);
        if (st == FG_XML_STATE_STOPPED && r->restart) {
            r->restart = false;
            fg_buf_puts(&r->log, "R\n");
            fg_xml_parser_reset(r->p);
        } else if (st >= FG_XML_STATE_STOPPED) {
            break;
        }
    }
    if (fg_xml_parser_memory(r->p) > (size_t)1 << 20)
        die("parser holds more than 1 MB", &r->log, NULL);
    fg_xml_parser_free(r->p);
}

/* Equal logs, except for the two differences parser.h allows: with an oversize stanza
 * (checked by the caller) and text between stanzas that expat folds into a following
 * malformed token ("x]]>" in one piece is not-well-formed, "x" then "]]>" is
 * bad-format first). */
static bool same_but_text(const struct fg_buf *a, const struct fg_buf *b)
{
    const char *x = fg_buf_str(a), *y = fg_buf_str(b);
    if (strcmp(x, y) == 0)
        return true;
    static const char wf[] = "E not-well-formed\n", bf[] = "E bad-format\n";
    size_t xl = strlen(x), yl = strlen(y), wl = sizeof wf - 1, bl = sizeof bf - 1;
    bool xw = xl >= wl && strcmp(x + xl - wl, wf) == 0,
         xb = xl >= bl && strcmp(x + xl - bl, bf) == 0;
    bool yw = yl >= wl && strcmp(y + yl - wl, wf) == 0,
         yb = yl >= bl && strcmp(y + yl - bl, bf) == 0;
    if (xw && yb)
        return xl - wl == yl - bl && memcmp(x, y, xl - wl) == 0;
    if (xb && yw)
        return xl - bl == yl - wl && memcmp(x, y, xl - bl) == 0;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct fg_xml_limits lim;
    fg_xml_limits_default(&lim);
    /* byte 0: small limits or the defaults; byte 1: seed of the second split */
    if (data[0] & 1) {
        lim.max_stanza = 32 + (size_t)(data[0] >> 1) * 8;
        lim.max_depth = 1 + (data[0] >> 4);
        lim.max_attrs = (data[0] >> 2) & 15;
    }
    uint32_t seed = (uint32_t)data[1] * 2654435761u | 1;
    data += 2;
    size -= 2;

    struct run a, b;
    run(&a, &lim, data, size, 0);
    run(&b, &lim, data, size, seed);
    if (!a.policy && !b.policy && !same_but_text(&a.log, &b.log))
        die("one piece and many pieces disagree", &a.log, &b.log);
    fg_buf_free(&a.log);
    fg_buf_free(&b.log);
    return 0;
}

#ifdef FG_FUZZ_STANDALONE
/* Replays files without libFuzzer: fuzz_xml FILE... */
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
