/* certid.h - does a peer certificate name an XMPP server domain (RFC 9525, RFC 7590, RFC 6120
 * section 13.7.1.2): DNS-ID, SRV-ID "_xmpp-server.DOMAIN", XmppAddr; never the subject CN.
 * Pure: the chain's trust is not checked here (net/tls.c records the OpenSSL verdict). */
#ifndef FG_CERTID_H
#define FG_CERTID_H

#include <stdbool.h>
#include <stddef.h>

struct x509_st; /* OpenSSL's X509 */

/* True when cert names domain (A-label or U-label; compared as A-labels, case-insensitively)
 * in its subjectAltName:
 *   - dNSName equal to domain, or "*.PARENT" where domain is one label under PARENT
 *     (the wildcard only as the complete left-most label, PARENT of two labels or more;
 *     "x*.d", "xn--*.d", "a.*.d" never match);
 *   - otherName id-on-dnsSRV (1.3.6.1.5.5.7.8.7, IA5String) "_xmpp-server.DOMAIN";
 *   - otherName id-on-xmppAddr (1.3.6.1.5.5.7.8.5, UTF8String) equal to domain after
 *     IDNA conversion ("bücher.test" names "xn--bcher-kva.test").
 * why (may be NULL) receives which identity matched ("DNS-ID *.b.test") or, when none
 * did, a sentence for people: "certificate presented by b.test names only c.test,
 * *.c.test". cert NULL = no certificate. */
bool fg_certid_match(const struct x509_st *cert, const char *domain, char *why, size_t whylen);

/* The DNS-ID rule alone: presented (a dNSName) against reference (a lowercase A-label). */
bool fg_certid_dns_id_matches(const char *presented, const char *reference);

#endif
