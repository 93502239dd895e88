/* policy.c - the partner model, the negotiation matrix and its messages, domain-name
 * normalisation (libidn2), field validation and the gateway settings table.
 * Pure: no I/O, no store, no clock; callers decide what to do with a verdict. */
#include "policy/policy.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names of enumerations ------------------------------------------------------- */

static const char *const neg_names[] = {"required", "optional", "not-supported"};
static const char *const ptype_names[] = {"federated", "public-verified", "public-unverified"};
static const char *const role_names[] = {"server-admin", "administrator", "viewer"};

/* Exact, case-sensitive match: these are the documented spellings that scripts see. */
static int name_index(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

int fg_neg_parse(const char *s)
{
    return name_index(neg_names, COUNT(neg_names), s);
}

const char *fg_neg_name(enum fg_neg n)
{
    return (unsigned)n < COUNT(neg_names) ? neg_names[n] : "?";
}

int fg_ptype_parse(const char *s)
{
    return name_index(ptype_names, COUNT(ptype_names), s);
}

const char *fg_ptype_name(enum fg_ptype t)
{
    return (unsigned)t < COUNT(ptype_names) ? ptype_names[t] : "?";
}

int fg_role_parse(const char *s)
{
    return name_index(role_names, COUNT(role_names), s);
}

const char *fg_role_name(enum fg_role r)
{
    return (unsigned)r < COUNT(role_names) ? role_names[r] : "?";
}

/* Booleans come from people typing on a command line, so case is ignored here. */
int fg_bool_parse(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    if (!s)
        return -1;
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* ---- the partner object ---------------------------------------------------------- */

void fg_partner_init(struct fg_partner *p, const char *domain)
{
    memset(p, 0, sizeof *p);
    p->domain = fg_strdup(domain ? domain : "");
    p->description = fg_strdup("");
    p->additional = fg_calloc(1, sizeof *p->additional);
    p->subdomains = false;
    p->type = FG_PT_PUBLIC_UNVERIFIED;
    p->tls = FG_NEG_REQUIRED;
    p->sasl = FG_NEG_OPTIONAL;
    p->dialback = true;
    p->keepalive = true;
    p->connection_limit = 0;
    p->proxy_fqdn = fg_strdup("");
}

/* dst is treated as uninitialised (like fg_partner_init): clear it first if it holds data. */
void fg_partner_copy(struct fg_partner *dst, const struct fg_partner *src)
{
    *dst = *src;
    dst->domain = fg_strdup(src->domain ? src->domain : "");
    dst->description = fg_strdup(src->description ? src->description : "");
    dst->additional = fg_strv_dup(src->additional);
    dst->proxy_fqdn = fg_strdup(src->proxy_fqdn ? src->proxy_fqdn : "");
}

void fg_partner_clear(struct fg_partner *p)
{
    fg_free(p->domain);
    fg_free(p->description);
    fg_strv_free(p->additional);
    fg_free(p->proxy_fqdn);
    memset(p, 0, sizeof *p);
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The order of additional domains counts: it is what people see and what the audit shows. */
bool fg_partner_equal(const struct fg_partner *a, const struct fg_partner *b)
{
    size_t n = fg_strv_len(a->additional);
    if (n != fg_strv_len(b->additional))
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(a->additional[i], b->additional[i]) != 0)
            return false;
    return str_eq(a->domain, b->domain) && str_eq(a->description, b->description) &&
           a->subdomains == b->subdomains && a->type == b->type && a->tls == b->tls &&
           a->sasl == b->sasl && a->dialback == b->dialback && a->keepalive == b->keepalive &&
           a->connection_limit == b->connection_limit && str_eq(a->proxy_fqdn, b->proxy_fqdn);
}

/* ---- domain names ---------------------------------------------------------------- */

/* Input longer than this cannot become a 253-octet name even with mappings that shrink
 * (full-width letters, ignored code points); refusing early bounds the work. */
#define DOMAIN_INPUT_MAX 4096

static bool is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* People read these; each names what is wrong, the caller names the value. */
static const char *idn2_reason(int rc)
{
    switch (rc) {
    case IDN2_TOO_BIG_LABEL:
    case IDN2_PUNYCODE_BIG_OUTPUT: /* the encoded label would not fit in 63 octets */
        return "a label is longer than 63 octets";
    case IDN2_TOO_BIG_DOMAIN:
        return "the name is longer than 253 octets";
    case IDN2_HYPHEN_STARTEND:
        return "a label starts or ends with a hyphen";
    case IDN2_2HYPHEN:
        return "an internationalised label has hyphens in its third and fourth positions";
    case IDN2_ENCODING_ERROR:
    case IDN2_ICONV_FAIL:
        return "the name is not valid UTF-8";
    case IDN2_PUNYCODE_BAD_INPUT:
    case IDN2_PUNYCODE_OVERFLOW:
    case IDN2_INVALID_ALABEL:
    case IDN2_ALABEL_ROUNDTRIP_FAILED:
    case IDN2_INVALID_NONTRANSITIONAL:
    case IDN2_INVALID_TRANSITIONAL:
        return "a label starting with xn-- is not a valid IDNA A-label";
    case IDN2_BIDI:
        return "a label mixes right-to-left and left-to-right text in a way IDNA forbids";
    default:
        return "the name contains a character that is not allowed in domain names";
    }
}

/* RFC 5891 section 5.4: an A-label must decode to a U-label that encodes back to it.
 * libidn2 checks the Punycode but, under UTS-46, not that the decoded text is itself
 * valid: "xn--g---lsc" decodes to "g--" + U+0384, which UTS-46 maps to something else.
 * Without this check such a name would not survive a trip through its Unicode form. */
static bool alabel_roundtrips(const char *label, size_t n)
{
    char *a = fg_strndup(label, n);
    char *u = NULL, *back = NULL;
    bool ok = idn2_to_unicode_8z8z(a, &u, 0) == IDN2_OK && u &&
              idn2_to_ascii_8z(u, &back, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) == IDN2_OK &&
              back && strcasecmp(a, back) == 0;
    idn2_free(u);
    idn2_free(back);
    fg_free(a);
    return ok;
}

/* Converts one dot-separated piece of the input to ASCII, appending to out.
 * libidn2 applies UTS-46 mapping (case folding, width folding) and the IDNA2008 checks.
 * One fallback: a plain ASCII label such as "r3--sn-abc" (hyphens in positions 3 and 4,
 * common in real host names) is refused by IDNA's CheckHyphens although it is a valid
 * LDH host name; for ASCII labels that are not xn-- labels UTS-46 mapping is just
 * lower-casing, so we do that ourselves. */
static int convert_label(const char *seg, size_t n, struct fg_buf *out, const char **why)
{
    if (n == 0)
        return 0; /* empty labels are judged on the joined result */
    char *in = fg_strndup(seg, n);
    char *res = NULL;
    int rc = idn2_to_ascii_8z(in, &res, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc == IDN2_INVALID_FLAGS) /* a libidn2 without TR46: IDNA2008 alone */
        rc = idn2_to_ascii_8z(in, &res, IDN2_NFC_INPUT);
    if (rc == IDN2_2HYPHEN && is_ascii(in, n) && strncasecmp(in, "xn--", 4) != 0) {
        for (size_t i = 0; i < n; i++)
            fg_buf_putc(out, ascii_lower(in[i]));
        fg_free(in);
        return 0;
    }
    fg_free(in);
    if (rc != IDN2_OK) {
        *why = idn2_reason(rc);
        return FG_EINVAL;
    }
    /* The result may hold several labels: UTS-46 maps U+3002 and its kin to '.'. */
    for (const char *lab = res; *lab;) {
        size_t ln = strcspn(lab, ".");
        if (ln > 4 && strncmp(lab, "xn--", 4) == 0 && !alabel_roundtrips(lab, ln)) {
            idn2_free(res);
            *why = idn2_reason(IDN2_ALABEL_ROUNDTRIP_FAILED);
            return FG_EINVAL;
        }
        lab += ln;
        if (*lab == '.')
            lab++;
    }
    fg_buf_puts(out, res);
    idn2_free(res);
    return 0;
}

/* The checks that hold for every A-label name, whatever produced it. */
static const char *check_alabel_name(const char *d, size_t len)
{
    if (len == 0)
        return "the name is empty";
    if (len > FG_DOMAIN_MAX)
        return "the name is longer than 253 octets";
    bool all_numeric = true;
    size_t start = 0, last_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && d[i] != '.')
            continue;
        size_t l = i - start;
        if (l == 0)
            return "the name has an empty label (two dots in a row, or a leading dot)";
        if (l > 63)
            return "a label is longer than 63 octets";
        if (d[start] == '-' || d[i - 1] == '-')
            return "a label starts or ends with a hyphen";
        bool numeric = true;
        for (size_t k = start; k < i; k++) {
            char c = d[k];
            if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-'))
                return "the name contains a character other than letters, digits, hyphens "
                       "and dots";
            if (!is_digit(c))
                numeric = false;
        }
        if (!numeric)
            all_numeric = false;
        last_start = start;
        start = i + 1;
    }
    struct in_addr a4;
    /* inet_aton also takes the short and hexadecimal forms (127.1, 0x7f.0.0.1). */
    if (all_numeric || inet_aton(d, &a4))
        return "an IP address is not a domain name";
    bool tld_numeric = true;
    for (size_t k = last_start; k < len; k++)
        if (!is_digit(d[k]))
            tld_numeric = false;
    if (tld_numeric)
        return "the last label (top-level domain) is all digits, which no DNS name has";
    return NULL;
}

int fg_domain_normalize(const char *in, char *out, size_t outlen, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (out && outlen)
        out[0] = '\0';
    if (!in || !in[0]) {
        *why = "the name is empty";
        return FG_EINVAL;
    }
    size_t inlen = strlen(in);
    if (inlen > DOMAIN_INPUT_MAX) {
        *why = "the name is longer than 253 octets";
        return FG_EINVAL;
    }
    /* Checked before conversion so that "[::1]" and "::1" get the message that fits. */
    if (strpbrk(in, ":[]")) {
        *why = "an IP address is not a domain name";
        return FG_EINVAL;
    }

    /* Converting label by label keeps the ASCII fallback local to the label it fits. */
    struct fg_buf b = {0};
    int rc = 0;
    const char *seg = in;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
        rc = convert_label(seg, n, &b, why);
        if (rc)
            goto done;
        if (!dot)
            break;
        fg_buf_putc(&b, '.');
        seg = dot + 1;
    }

    fg_buf_putc(&b, '\0'); /* makes b.data non-NULL; the NUL is not counted below */
    size_t len = b.len - 1;
    char *d = b.data;
    if (len > 0 && d[len - 1] == '.')
        len--; /* one trailing dot: the absolute form of the same name */
    d[len] = '\0';
    *why = check_alabel_name(d, len);
    if (*why) {
        rc = FG_EINVAL;
        goto done;
    }
    if (!out || outlen <= len) {
        *why = "the output buffer is too small";
        rc = FG_EINVAL;
        goto done;
    }
    memcpy(out, d, len + 1);
    rc = 0;
done:
    fg_buf_free(&b);
    return rc;
}

/* Label by label, so that a label libidn2 cannot decode stays as it is. */
char *fg_domain_to_unicode(const char *alabel)
{
    if (!alabel)
        return fg_strdup("");
    struct fg_buf b = {0};
    const char *seg = alabel;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
        char *lab = fg_strndup(seg, n);
        char *u = NULL;
        if (n > 4 && strncasecmp(lab, "xn--", 4) == 0 &&
            idn2_to_unicode_8z8z(lab, &u, 0) == IDN2_OK && u && u[0] && !strchr(u, '.'))
            fg_buf_puts(&b, u);
        else
            fg_buf_append(&b, lab, n);
        idn2_free(u);
        fg_free(lab);
        if (!dot)
            break;
        fg_buf_putc(&b, '.');
        seg = dot + 1;
    }
    if (!b.data)
        return fg_strdup("");
    return fg_buf_steal(&b);
}

bool fg_domain_within(const char *d, const char *parent)
{
    if (!d || !parent || !parent[0])
        return false;
    size_t dl = strlen(d), pl = strlen(parent);
    if (dl == pl)
        return strcasecmp(d, parent) == 0;
    /* "xa.test" is not within "a.test": the match must start at a label boundary. */
    return dl > pl && d[dl - pl - 1] == '.' && strcasecmp(d + dl - pl, parent) == 0;
}

/* ---- the negotiation matrix (SPEC section 2) -------------------------------------- */

#define REQ FG_NEG_REQUIRED
#define OPT FG_NEG_OPTIONAL
#define NS FG_NEG_NOT_SUPPORTED
#define NONE "\u2014"

/* Row order is the SPEC's: dialback fastest, then TLS, then SASL; fg_policy_matrix_row
 * relies on it (and the unit test checks every row against its own copy of the SPEC). */
const struct fg_matrix_row fg_policy_matrix[18] = {
    {1, REQ, REQ, true, "EXTERNAL over TLS", NULL, {"W2", NULL}},
    {2, REQ, REQ, false, "EXTERNAL over TLS", NULL, {NULL, NULL}},
    {3, OPT, REQ, true, "EXTERNAL over TLS", NULL, {"W1", "W2"}},
    {4, OPT, REQ, false, "EXTERNAL over TLS", NULL, {"W1", NULL}},
    {5, NS, REQ, true, NONE, "R3", {NULL, NULL}},
    {6, NS, REQ, false, NONE, "R3", {NULL, NULL}},
    {7, REQ, OPT, true, "EXTERNAL or dialback, over TLS", NULL, {NULL, NULL}},
    {8, REQ, OPT, false, "EXTERNAL over TLS", NULL, {NULL, NULL}},
    {9, OPT, OPT, true, "EXTERNAL over TLS; dialback over TLS or TCP", NULL, {NULL, NULL}},
    {10, OPT, OPT, false, "EXTERNAL over TLS", NULL, {"W1", NULL}},
    {11, NS, OPT, true, NONE, "R3", {NULL, NULL}},
    {12, NS, OPT, false, NONE, "R3", {NULL, NULL}},
    {13, REQ, NS, true, "dialback over TLS", NULL, {NULL, NULL}},
    {14, REQ, NS, false, NONE, "R2", {NULL, NULL}},
    {15, OPT, NS, true, "dialback over TLS or TCP", NULL, {NULL, NULL}},
    {16, OPT, NS, false, NONE, "R2", {NULL, NULL}},
    {17, NS, NS, true, "dialback over TCP", NULL, {NULL, NULL}},
    {18, NS, NS, false, NONE, "R2", {NULL, NULL}},
};

#undef REQ
#undef OPT
#undef NS
#undef NONE

const struct fg_matrix_row *fg_policy_matrix_row(enum fg_neg tls, enum fg_neg sasl, bool dialback)
{
    if ((unsigned)tls > FG_NEG_NOT_SUPPORTED || (unsigned)sasl > FG_NEG_NOT_SUPPORTED)
        return NULL;
    return &fg_policy_matrix[(unsigned)sasl * 6 + (unsigned)tls * 2 + (dialback ? 0 : 1)];
}

/* R2, R3, W1 and W2 are fixed by the SPEC word for word. The others are templates:
 * {domain} and {partner} are filled in by fill_template (not printf, so that a template
 * is never used as a format string). */
static const struct {
    const char *id;
    const char *text;
} rule_texts[] = {
    {"R2", "Nothing could authenticate this partner: with SASL not-supported, dialback must "
           "be true."},
    {"R3", "SASL needs TLS: set TLS to required or optional, or set SASL to not-supported if "
           "this partner cannot do TLS."},
    {"W1", "With TLS optional, a partner that declines TLS cannot authenticate (SASL needs "
           "TLS and dialback is not allowed here): set TLS to required."},
    {"W2", "Dialback is never used while SASL is required."},
    {"D1", "{domain} already belongs to partner {partner}: remove it there first, or choose "
           "another domain."},
    {"D2", "{domain} is one of this server's hosted domains and cannot be a partner domain: "
           "choose another domain."},
    {"D3", "{domain} is this partner's primary domain and cannot also be one of its "
           "additional domains: remove it from the additional domains."},
    {"A1", "The last server-admin cannot be removed or demoted: add another server-admin "
           "first."},
};

const char *fg_policy_rule_text(const char *rule)
{
    if (!rule)
        return NULL;
    for (size_t i = 0; i < COUNT(rule_texts); i++)
        if (strcmp(rule_texts[i].id, rule) == 0)
            return rule_texts[i].text;
    return NULL;
}

/* Replaces {domain} and {partner} in tmpl; returns false when the result does not fit. */
static bool fill_template(char *out, size_t outlen, const char *tmpl, const char *domain,
                          const char *partner)
{
    struct fg_buf b = {0};
    for (const char *s = tmpl; *s;) {
        if (strncmp(s, "{domain}", 8) == 0) {
            fg_buf_puts(&b, domain ? domain : "");
            s += 8;
        } else if (strncmp(s, "{partner}", 9) == 0) {
            fg_buf_puts(&b, partner ? partner : "");
            s += 9;
        } else {
            fg_buf_putc(&b, *s++);
        }
    }
    bool fits = b.len < outlen;
    snprintf(out, outlen, "%s", fg_buf_str(&b));
    fg_buf_free(&b);
    return fits;
}

static void verdict_reset(struct fg_verdict *v)
{
    memset(v, 0, sizeof *v);
}

static int refuse(struct fg_verdict *v, const char *rule, const char *domain, const char *partner,
                  const char *field1, const char *field2)
{
    v->rule = rule;
    const char *tmpl = fg_policy_rule_text(rule);
    if (!fill_template(v->message, sizeof v->message, tmpl, domain, partner) &&
        strcmp(rule, "D1") == 0)
        /* Two names of up to 253 octets may not fit beside the text; keep the fix whole. */
        fill_template(v->message, sizeof v->message,
                      "{domain} already belongs to another partner: remove it there first, "
                      "or choose another domain.",
                      domain, NULL);
    v->fields[0] = field1;
    v->fields[1] = field1 ? field2 : NULL;
    v->fields[2] = NULL;
    return FG_EREFUSED;
}

static bool strv_contains(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* D1: the other partner that already has domain d (as primary or additional), or NULL. */
static const struct fg_partner *owner_of(const char *d, const struct fg_partner *const *others)
{
    for (size_t i = 0; others && others[i]; i++) {
        const struct fg_partner *o = others[i];
        if ((o->domain && strcmp(o->domain, d) == 0) || strv_contains(o->additional, d))
            return o;
    }
    return NULL;
}

int fg_policy_check_partner(const struct fg_partner *p, char *const *hosted,
                            const struct fg_partner *const *others, struct fg_verdict *v)
{
    verdict_reset(v);
    const struct fg_matrix_row *row = fg_policy_matrix_row(p->tls, p->sasl, p->dialback);
    if (!row) {
        /* Only a programming error gets here: every parser refuses other values. */
        v->rule = NULL;
        snprintf(v->message, sizeof v->message, "TLS or SASL has a value out of range.");
        v->fields[0] = "tls";
        v->fields[1] = "sasl";
        return FG_EINVAL;
    }
    /* R3 before R2: the SPEC reports the first failing of R3, R2, D2, D3, D1. */
    if (row->refusal && strcmp(row->refusal, "R3") == 0)
        return refuse(v, "R3", NULL, NULL, "tls", "sasl");
    if (row->refusal && strcmp(row->refusal, "R2") == 0)
        return refuse(v, "R2", NULL, NULL, "sasl", "dialback");

    if (strv_contains(hosted, p->domain))
        return refuse(v, "D2", p->domain, NULL, "domain", NULL);
    for (size_t i = 0; p->additional && p->additional[i]; i++)
        if (strv_contains(hosted, p->additional[i]))
            return refuse(v, "D2", p->additional[i], NULL, "additional_domains", NULL);

    if (strv_contains(p->additional, p->domain))
        return refuse(v, "D3", p->domain, NULL, "additional_domains", NULL);

    const struct fg_partner *o = owner_of(p->domain, others);
    if (o)
        return refuse(v, "D1", p->domain, o->domain, "domain", NULL);
    for (size_t i = 0; p->additional && p->additional[i]; i++) {
        o = owner_of(p->additional[i], others);
        if (o)
            return refuse(v, "D1", p->additional[i], o->domain, "additional_domains", NULL);
    }

    v->warnings[0] = row->warnings[0];
    v->warnings[1] = row->warnings[1];
    return 0;
}

int fg_policy_check_admins(int server_admins_after, struct fg_verdict *v)
{
    verdict_reset(v);
    if (server_admins_after >= 1)
        return 0;
    v->rule = "A1";
    snprintf(v->message, sizeof v->message, "%s", fg_policy_rule_text("A1"));
    v->fields[0] = "role";
    return FG_EREFUSED;
}

/* ---- field values ---------------------------------------------------------------- */

/* Counts the code points of s; false when s is not well-formed UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF included), because JSON could not carry it. */
static bool utf8_count(const char *s, size_t *count)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        unsigned c = *p;
        size_t extra;
        uint32_t cp, min;
        if (c < 0x80) {
            p++;
            n++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (size_t i = 1; i <= extra; i++) {
            if ((p[i] & 0xC0) != 0x80) /* also stops at the NUL */
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += extra + 1;
        n++;
    }
    *count = n;
    return true;
}

static int check_description(const char *s, char *err, size_t errlen)
{
    size_t n = 0;
    if (!utf8_count(s ? s : "", &n)) {
        fg_errf(err, errlen, "description is not valid UTF-8");
        return FG_EINVAL;
    }
    if (n > FG_DESCRIPTION_MAX) {
        fg_errf(err, errlen, "description is too long: %zu characters, at most %d are allowed", n,
                FG_DESCRIPTION_MAX);
        return FG_EINVAL;
    }
    return 0;
}

/* Strict decimal: digits only (no sign, no spaces, no "0x"), at most 9 of them so that
 * the value fits any long. Returns false otherwise. */
static bool parse_decimal(const char *s, long *out)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* proxy_fqdn: "" or host[:port]. On success, *norm (if given) receives the stored form:
 * the host as a normalised A-label, and the port without leading zeros. */
static int parse_proxy(const char *s, char **norm, char *err, size_t errlen)
{
    if (!s || !s[0]) {
        if (norm)
            *norm = fg_strdup("");
        return 0;
    }
    const char *colon = strchr(s, ':');
    size_t hostlen = colon ? (size_t)(colon - s) : strlen(s);
    long port = 0;
    if (colon && (!parse_decimal(colon + 1, &port) || port < 1 || port > 65535)) {
        fg_errf(err, errlen,
                "invalid value '%s' for proxy_fqdn: the port must be a number from 1 to 65535", s);
        return FG_EINVAL;
    }
    char *host = fg_strndup(s, hostlen);
    char out[FG_DOMAIN_MAX + 1];
    const char *why = NULL;
    int rc = fg_domain_normalize(host, out, sizeof out, &why);
    fg_free(host);
    if (rc) {
        fg_errf(err, errlen, "invalid value '%s' for proxy_fqdn: expected host or host:port (%s)",
                s, why);
        return FG_EINVAL;
    }
    if (norm)
        *norm = colon ? fg_asprintf("%s:%ld", out, port) : fg_strdup(out);
    return 0;
}

int fg_policy_check_fields(const struct fg_partner *p, char *err, size_t errlen)
{
    int rc = check_description(p->description, err, errlen);
    if (rc)
        return rc;
    if (p->connection_limit < 0 || p->connection_limit > 65535) {
        fg_errf(err, errlen,
                "invalid value %d for connection_limit: expected 1 to 65535, or default",
                p->connection_limit);
        return FG_EINVAL;
    }
    return parse_proxy(p->proxy_fqdn, NULL, err, errlen);
}

/* Appends d to *v unless it is already there: a repeated additional domain is dropped
 * silently, keeping the first position (the list is a set that people ordered). */
static void strv_push_unique(char ***v, const char *d)
{
    if (!strv_contains(*v, d))
        fg_strv_push(v, d);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int set_additional(struct fg_partner *p, const char *value, char *err, size_t errlen)
{
    char **list = fg_calloc(1, sizeof *list);
    const char *s = value;
    bool more = value[0] != '\0'; /* "" is the empty list */
    while (more) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        /* "a, b" is how people type lists; spaces around an item are not part of it. */
        while (n && is_space(*s))
            s++, n--;
        while (n && is_space(s[n - 1]))
            n--;
        char *item = fg_strndup(s, n);
        char out[FG_DOMAIN_MAX + 1];
        const char *why = NULL;
        if (fg_domain_normalize(item, out, sizeof out, &why)) {
            fg_errf(err, errlen, "invalid domain '%s' in additional_domains: %s", item, why);
            fg_free(item);
            fg_strv_free(list);
            return FG_EINVAL;
        }
        fg_free(item);
        strv_push_unique(&list, out);
        more = comma != NULL;
        if (more)
            s = comma + 1;
    }
    fg_strv_free(p->additional);
    p->additional = list;
    return 0;
}

static const char *const partner_keys[] = {
    "description", "additional_domains", "subdomains", "partner_type",     "tls",
    "sasl",        "dialback",           "keepalive",  "connection_limit", "proxy_fqdn",
};

static int set_bool(bool *dst, const char *key, const char *value, char *err, size_t errlen)
{
    int b = fg_bool_parse(value);
    if (b < 0) {
        fg_errf(err, errlen, "invalid value '%s' for %s: expected true or false", value, key);
        return FG_EINVAL;
    }
    *dst = b;
    return 0;
}

static int set_neg(enum fg_neg *dst, const char *key, const char *value, char *err, size_t errlen)
{
    int n = fg_neg_parse(value);
    if (n < 0) {
        fg_errf(err, errlen,
                "invalid value '%s' for %s: expected required, optional or not-supported", value,
                key);
        return FG_EINVAL;
    }
    *dst = (enum fg_neg)n;
    return 0;
}

int fg_partner_set_text(struct fg_partner *p, const char *key, const char *value, char *err,
                        size_t errlen)
{
    if (!key)
        key = "";
    if (!value)
        value = "";
    if (strcmp(key, "description") == 0) {
        int rc = check_description(value, err, errlen);
        if (rc)
            return rc;
        fg_free(p->description);
        p->description = fg_strdup(value);
        return 0;
    }
    if (strcmp(key, "additional_domains") == 0)
        return set_additional(p, value, err, errlen);
    if (strcmp(key, "subdomains") == 0)
        return set_bool(&p->subdomains, key, value, err, errlen);
    if (strcmp(key, "dialback") == 0)
        return set_bool(&p->dialback, key, value, err, errlen);
    if (strcmp(key, "keepalive") == 0)
        return set_bool(&p->keepalive, key, value, err, errlen);
    if (strcmp(key, "tls") == 0)
        return set_neg(&p->tls, key, value, err, errlen);
    if (strcmp(key, "sasl") == 0)
        return set_neg(&p->sasl, key, value, err, errlen);
    if (strcmp(key, "partner_type") == 0) {
        int t = fg_ptype_parse(value);
        if (t < 0) {
            fg_errf(err, errlen,
                    "invalid value '%s' for partner_type: expected federated, public-verified "
                    "or public-unverified",
                    value);
            return FG_EINVAL;
        }
        p->type = (enum fg_ptype)t;
        return 0;
    }
    if (strcmp(key, "connection_limit") == 0) {
        long n = 0;
        if (strcmp(value, "default") == 0) {
            p->connection_limit = 0;
            return 0;
        }
        if (!parse_decimal(value, &n) || n < 1 || n > 65535) {
            fg_errf(err, errlen,
                    "invalid value '%s' for connection_limit: expected a number from 1 to "
                    "65535, or default",
                    value);
            return FG_EINVAL;
        }
        p->connection_limit = (int)n;
        return 0;
    }
    if (strcmp(key, "proxy_fqdn") == 0) {
        char *norm = NULL;
        int rc = parse_proxy(value, &norm, err, errlen);
        if (rc)
            return rc;
        fg_free(p->proxy_fqdn);
        p->proxy_fqdn = norm;
        return 0;
    }
    if (strcmp(key, "domain") == 0) {
        fg_errf(err, errlen, "domain cannot be changed");
        return FG_EINVAL;
    }
    struct fg_buf known = {0};
    for (size_t i = 0; i < COUNT(partner_keys); i++)
        fg_buf_printf(&known, "%s%s", i ? ", " : "", partner_keys[i]);
    fg_errf(err, errlen, "unknown partner field '%s': expected one of %s", key, fg_buf_str(&known));
    fg_buf_free(&known);
    return FG_ENOTFOUND;
}

/* ---- gateway settings (SPEC section 5) -------------------------------------------- */

/* clang-format off */
#define GW_INT(key, def, min, max) \
    {#key, FG_GW_INT, min, max, def, offsetof(struct fg_gateway, key)}
/* clang-format on */

const struct fg_gateway_key fg_gateway_keys[] = {
    GW_INT(connection_limit, 1000, 1, 1000000),
    GW_INT(partner_connection_limit, 20, 1, 65535),
    GW_INT(keepalive_interval, 300, 10, 86400),
    GW_INT(stream_establishment_timeout, 60, 5, 600),
    GW_INT(stream_inactivity_timeout, 600, 30, 86400),
    GW_INT(subscription_refresh_interval, 28800, 600, 604800),
    {"log_message_bodies", FG_GW_BOOL, 0, 1, 0, offsetof(struct fg_gateway, log_message_bodies)},
    {"unlisted_domains", FG_GW_UNLISTED, 0, 0, 0, offsetof(struct fg_gateway, unlisted_domains)},
};

#undef GW_INT

const size_t fg_gateway_nkeys = COUNT(fg_gateway_keys);

static const struct fg_gateway_key *gateway_key(const char *name)
{
    for (size_t i = 0; name && i < fg_gateway_nkeys; i++)
        if (strcmp(fg_gateway_keys[i].name, name) == 0)
            return &fg_gateway_keys[i];
    return NULL;
}

static bool unlisted_valid(const char *s)
{
    return strcmp(s, "block") == 0 || fg_ptype_parse(s) >= 0;
}

void fg_gateway_defaults(struct fg_gateway *g)
{
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < fg_gateway_nkeys; i++) {
        const struct fg_gateway_key *k = &fg_gateway_keys[i];
        char *field = (char *)g + k->offset;
        switch (k->kind) {
        case FG_GW_INT:
            *(long *)(void *)field = k->def;
            break;
        case FG_GW_BOOL:
            *(bool *)(void *)field = k->def != 0;
            break;
        case FG_GW_UNLISTED:
            snprintf(field, sizeof g->unlisted_domains, "%s", "block");
            break;
        }
    }
}

int fg_gateway_set_text(struct fg_gateway *g, const char *key, const char *value, char *err,
                        size_t errlen)
{
    const struct fg_gateway_key *k = gateway_key(key);
    if (!value)
        value = "";
    if (!k) {
        struct fg_buf known = {0};
        for (size_t i = 0; i < fg_gateway_nkeys; i++)
            fg_buf_printf(&known, "%s%s", i ? ", " : "", fg_gateway_keys[i].name);
        fg_errf(err, errlen, "unknown gateway setting '%s': expected one of %s", key ? key : "",
                fg_buf_str(&known));
        fg_buf_free(&known);
        return FG_ENOTFOUND;
    }
    char *field = (char *)g + k->offset;
    switch (k->kind) {
    case FG_GW_INT: {
        long n = 0;
        if (!parse_decimal(value, &n) || n < k->min || n > k->max) {
            fg_errf(err, errlen, "invalid value '%s' for %s: expected an integer from %ld to %ld",
                    value, k->name, k->min, k->max);
            return FG_EINVAL;
        }
        *(long *)(void *)field = n;
        return 0;
    }
    case FG_GW_BOOL: {
        int b = fg_bool_parse(value);
        if (b < 0) {
            fg_errf(err, errlen, "invalid value '%s' for %s: expected true or false", value,
                    k->name);
            return FG_EINVAL;
        }
        *(bool *)(void *)field = b;
        return 0;
    }
    case FG_GW_UNLISTED:
        if (!unlisted_valid(value)) {
            fg_errf(err, errlen,
                    "invalid value '%s' for %s: expected block, federated, public-verified or "
                    "public-unverified",
                    value, k->name);
            return FG_EINVAL;
        }
        snprintf(field, sizeof g->unlisted_domains, "%s", value);
        return 0;
    }
    return FG_EINVAL;
}

int fg_gateway_get_text(const struct fg_gateway *g, const char *key, char *out, size_t outlen)
{
    const struct fg_gateway_key *k = gateway_key(key);
    if (!k)
        return FG_ENOTFOUND;
    const char *field = (const char *)g + k->offset;
    int n = 0;
    switch (k->kind) {
    case FG_GW_INT:
        n = snprintf(out, outlen, "%ld", *(const long *)(const void *)field);
        break;
    case FG_GW_BOOL:
        n = snprintf(out, outlen, "%s", *(const bool *)(const void *)field ? "true" : "false");
        break;
    case FG_GW_UNLISTED:
        n = snprintf(out, outlen, "%s", field);
        break;
    }
    return (n < 0 || (size_t)n >= outlen) ? FG_ELIMIT : 0;
}

int fg_user_jid_prepare(const char *in, char *const *hosted, char *out, size_t outlen,
                        const char **why)
{
    const char *at = strchr(in, '@');
    char d[FG_DOMAIN_MAX + 1];
    size_t ll = at ? (size_t)(at - in) : 0;
    *why = NULL;
    if (!at || ll == 0)
        *why = "expected a bare JID: local@domain";
    else if (ll > 1023)
        *why = "the localpart is longer than 1023 bytes";
    else if (strchr(at + 1, '/') || strchr(at + 1, '@'))
        *why = "expected a bare JID: local@domain, without a resource";
    for (size_t i = 0; !*why && i < ll; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch <= ' ' || ch == 0x7f || strchr("\"&'/:<>@", ch))
            *why = "the localpart may not contain spaces or \"&'/:<>@";
    }
    if (!*why && fg_domain_normalize(at + 1, d, sizeof d, why) != FG_OK && !*why)
        *why = "invalid domain";
    if (!*why) {
        bool ours = false;
        for (size_t i = 0; hosted && hosted[i]; i++)
            ours = ours || strcmp(hosted[i], d) == 0;
        if (!ours)
            *why = "its domain is not one of the hosted domains";
    }
    if (!*why && ll + 1 + strlen(d) + 1 > outlen)
        *why = "the JID is too long";
    if (*why)
        return FG_EINVAL;
    for (size_t i = 0; i < ll; i++) {
        char ch = in[i];
        out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    out[ll] = '@';
    memcpy(out + ll + 1, d, strlen(d) + 1);
    return FG_OK;
}
