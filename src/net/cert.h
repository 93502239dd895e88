/* cert.h - checks of the certificate files a hosted domain serves with: readable PEM
 * chain and key, key matching the certificate, validity dates, and the domain among the
 * certificate's DNS names. Used by --check-config and at start; no network I/O. */
#ifndef FG_CERT_H
#define FG_CERT_H

#include <stddef.h>

/* Checks cert_dir/DOMAIN.crt and cert_dir/DOMAIN.key for domain. Returns 0, or FG_EIO /
 * FG_EINVAL with a sentence naming the file and the problem in err. */
int fg_cert_check(const char *cert_dir, const char *domain, char *err, size_t errlen);

#endif
