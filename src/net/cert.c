/* cert.c - offline checks of a hosted domain's certificate and key files (OpenSSL). */
#include "cert.h"
#include "core/alloc.h"
#include "core/err.h"

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

int fg_cert_check(const char *cert_dir, const char *domain, char *err, size_t errlen)
{
    char *crt_path = fg_asprintf("%s/%s.crt", cert_dir, domain);
    char *key_path = fg_asprintf("%s/%s.key", cert_dir, domain);
    X509 *crt = NULL;
    EVP_PKEY *key = NULL;
    int rc = FG_EIO;
    FILE *f = fopen(crt_path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the certificate of %s: %s", crt_path, domain,
                 strerror(errno));
        goto fail;
    }
    crt = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!crt) {
        snprintf(err, errlen, "%s: not a PEM certificate", crt_path);
        rc = FG_EINVAL;
        goto fail;
    }
    f = fopen(key_path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the private key of %s: %s", key_path, domain,
                 strerror(errno));
        goto fail;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    rc = FG_EINVAL;
    if (!key) {
        snprintf(err, errlen, "%s: not a PEM private key (or it is encrypted)", key_path);
        goto fail;
    }
    if (X509_check_private_key(crt, key) != 1) {
        snprintf(err, errlen, "%s does not match the certificate %s", key_path, crt_path);
        goto fail;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(crt)) < 0) {
        snprintf(err, errlen, "%s: the certificate has expired", crt_path);
        goto fail;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(crt)) > 0) {
        snprintf(err, errlen, "%s: the certificate is not valid yet", crt_path);
        goto fail;
    }
    /* DNS-ID only, as peers will check it (RFC 9525: never the subject CN) */
    if (X509_check_host(crt, domain, strlen(domain), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
                        NULL) != 1) {
        snprintf(err, errlen, "%s: the certificate has no DNS name %s in subjectAltName",
                 crt_path, domain);
        goto fail;
    }
    rc = FG_OK;
fail:
    X509_free(crt);
    EVP_PKEY_free(key);
    fg_free(crt_path);
    fg_free(key_path);
    return rc;
}
