/* certid.c - RFC 9525 / RFC 7590 identity matching on a certificate's subjectAltName for XMPP
 * s2s, through OpenSSL's parsed names. Decides nothing about trust; the subject CN is read
 * only to say, in a refusal, that it was not used. */
#include "xmpp/certid.h"

#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"

#define SRV_ID_PREFIX "_xmpp-server."
#define NAME_TEXT_MAX 1023 /* longest presented name read (a JID's limit) */
#define NAMES_IN_MESSAGE 8 /* presented names listed in a refusal before "and N more" */

/* Identity types, the preferred one last: a DNS-ID is reported over an SRV-ID, an SRV-ID
 * over an XmppAddr, when several match. */
enum kind { K_NONE = 0, K_XMPPADDR = 1, K_SRV = 2, K_DNS = 3 };

static const char *const kind_names[] = {"", "XmppAddr", "SRV-ID", "DNS-ID"};

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen, const char *fmt,
                                                      ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 4, 5))) static void append(char *out, size_t outlen, size_t *used,
                                                         const char *fmt, ...)
{
    if (*used + 1 >= outlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *used, outlen - *used, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *used += (size_t)n;
    if (*used >= outlen)
        *used = outlen - 1;
}

static bool is_dns_id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '*';
}

/* No empty label, no leading or trailing dot. */
static bool labels_ok(const char *s)
{
    size_t label = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else {
            label++;
        }
    }
    return label > 0;
}

bool fg_certid_dns_id_matches(const char *p, const char *ref)
{
    if (!p || !ref || !ref[0])
        return false;
    size_t pl = strlen(p);
    if (pl == 0 || pl > FG_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < pl; i++)
        if (!is_dns_id_char((unsigned char)p[i]))
            return false; /* dNSName is IA5 in A-label form: no U-labels, no spaces */
    if (p[0] == '*') {
        /* RFC 9525 section 6.3: only "*" as the complete left-most label, matching exactly
         * one label; a partial label ("x*", "xn--*") never matches */
        if (p[1] != '.')
            return false;
        const char *parent = p + 2;
        /* "*.test" would vouch for every name of a top-level domain */
        if (strchr(parent, '*') || !strchr(parent, '.') || !labels_ok(parent))
            return false;
        const char *dot = strchr(ref, '.');
        if (!dot || dot == ref)
            return false;
        return strcasecmp(dot + 1, parent) == 0;
    }
    if (strchr(p, '*') || !labels_ok(p))
        return false;
    return strcasecmp(p, ref) == 0;
}

static bool srv_id_matches(const char *value, const char *ref)
{
    size_t n = strlen(SRV_ID_PREFIX);
    if (strncasecmp(value, SRV_ID_PREFIX, n) != 0)
        return false;
    const char *name = value + n;
    for (const char *c = name; *c; c++)
        if (!is_dns_id_char((unsigned char)*c) || *c == '*')
            return false; /* wildcards belong to DNS-IDs only */
    return labels_ok(name) && strcasecmp(name, ref) == 0;
}

static bool xmppaddr_matches(const char *value, const char *ref)
{
    char norm[FG_DOMAIN_MAX + 1];
    const char *why = NULL;
    /* a full JID ("user@b.test") is no domain: normalisation refuses the '@' */
    if (fg_domain_normalize(value, norm, sizeof norm, &why) != 0)
        return false;
    return strcmp(norm, ref) == 0;
}

/* The string's octets as text in out, when they hold no NUL (an embedded NUL hides the
 * rest of a name from a C comparison) and fit. */
static bool asn1_text(const ASN1_STRING *s, char *out, size_t outlen)
{
    if (!s)
        return false;
    int len = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    if (len < 0 || !d || (size_t)len >= outlen || memchr(d, '\0', (size_t)len))
        return false;
    memcpy(out, d, (size_t)len);
    out[len] = '\0';
    return true;
}

/* A presented name for a message: control characters become '?'. */
static void printable(const char *in, char *out, size_t outlen)
{
    size_t i = 0;
    for (; in[i] && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[i] = '\0';
}

/* The first subject CN as UTF-8, for the refusal message; "" when there is none. */
static void subject_cn(const X509 *cert, char *out, size_t outlen)
{
    out[0] = '\0';
    const X509_NAME *name = X509_get_subject_name(cert);
    int idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (idx < 0)
        return;
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
    unsigned char *utf8 = NULL;
    int n = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    if (n > 0 && !memchr(utf8, '\0', (size_t)n))
        printable((const char *)utf8, out, outlen);
    OPENSSL_free(utf8);
}

/* What one subjectAltName entry presents: its kind and text, or K_NONE for types and
 * encodings that cannot name an XMPP server (IP, email, URI, other otherNames). */
static enum kind read_name(const GENERAL_NAME *g, char *text, size_t textlen, bool *readable)
{
    *readable = true;
    if (g->type == GEN_DNS) {
        *readable = asn1_text(g->d.dNSName, text, textlen);
        return K_DNS;
    }
    if (g->type != GEN_OTHERNAME)
        return K_NONE;
    ASN1_OBJECT *oid = NULL;
    ASN1_TYPE *value = NULL;
    if (!GENERAL_NAME_get0_otherName(g, &oid, &value) || !oid || !value)
        return K_NONE;
    int nid = OBJ_obj2nid(oid);
    /* RFC 4985: SRVName is an IA5String; RFC 6120 section 13.7.1.4: XmppAddr a UTF8String */
    if (nid == NID_SRVName) {
        *readable =
            value->type == V_ASN1_IA5STRING && asn1_text(value->value.ia5string, text, textlen);
        return K_SRV;
    }
    if (nid == NID_XmppAddr) {
        *readable =
            value->type == V_ASN1_UTF8STRING && asn1_text(value->value.utf8string, text, textlen);
        return K_XMPPADDR;
    }
    return K_NONE;
}

bool fg_certid_match(const struct x509_st *cert, const char *domain, char *why, size_t whylen)
{
    char ref[FG_DOMAIN_MAX + 1];
    const char *bad = NULL;
    if (!domain || fg_domain_normalize(domain, ref, sizeof ref, &bad) != 0) {
        say(why, whylen, "'%s' is not a domain name to check a certificate against (%s)",
            domain ? domain : "", bad ? bad : "none given");
        return false;
    }
    if (!cert) {
        say(why, whylen, "%s presented no certificate", domain);
        return false;
    }
    int crit = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (!gens && crit == -2) {
        say(why, whylen, "certificate presented by %s has more than one subjectAltName", domain);
        return false;
    }

    enum kind best = K_NONE;
    char matched[NAME_TEXT_MAX + 16] = "";
    char list[1024] = "";
    size_t used = 0, listed = 0, more = 0;
    int count = gens ? sk_GENERAL_NAME_num(gens) : 0;
    for (int i = 0; i < count; i++) {
        char text[NAME_TEXT_MAX + 1], shown[NAME_TEXT_MAX + 1];
        bool readable;
        enum kind k = read_name(sk_GENERAL_NAME_value(gens, i), text, sizeof text, &readable);
        if (k == K_NONE)
            continue;
        if (!readable)
            snprintf(shown, sizeof shown, "(an unreadable %s)", kind_names[k]);
        else
            printable(text, shown, sizeof shown);
        bool ok = readable && (k == K_DNS   ? fg_certid_dns_id_matches(text, ref)
                               : k == K_SRV ? srv_id_matches(text, ref)
                                            : xmppaddr_matches(text, ref));
        if (ok && k > best) {
            best = k;
            snprintf(matched, sizeof matched, "%s %s", kind_names[k], shown);
        }
        if (listed == NAMES_IN_MESSAGE) {
            more++;
            continue;
        }
        append(list, sizeof list, &used, "%s%s%s%s%s", listed ? ", " : "", shown,
               k == K_DNS || !readable ? "" : " (", k == K_DNS || !readable ? "" : kind_names[k],
               k == K_DNS || !readable ? "" : ")");
        listed++;
    }
    GENERAL_NAMES_free(gens);

    if (best != K_NONE) {
        say(why, whylen, "%s", matched);
        return true;
    }
    if (listed == 0) {
        char cn[256];
        subject_cn(cert, cn, sizeof cn);
        if (cn[0])
            say(why, whylen,
                "certificate presented by %s has no DNS, SRV or XmppAddr name in "
                "subjectAltName (its subject CN \"%s\" is not used, RFC 9525)",
                domain, cn);
        else
            say(why, whylen,
                "certificate presented by %s has no DNS, SRV or XmppAddr name in "
                "subjectAltName",
                domain);
        return false;
    }
    if (more)
        say(why, whylen, "certificate presented by %s names only %s, and %zu more", domain, list,
            more);
    else
        say(why, whylen, "certificate presented by %s names only %s", domain, list);
    return false;
}
