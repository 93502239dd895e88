/* tls.c - OpenSSL contexts for both roles: certificates per hosted domain chosen by SNI,
 * one shared trust store, a verify callback that records the verdict instead of failing
 * the handshake. Nothing here reads or writes a socket (that is conn.c). */
#include "tls.h"
#include "core/alloc.h"
#include "core/err.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct fg_tls_ctx {
    atomic_int refs;
    bool server;
    size_t n;      /* number of contexts, at least 1 */
    char **names;  /* n domain names, or NULL for a client without certificates */
    SSL_CTX **ctx; /* ctx[i] serves names[i] */
};

/* Per-SSL state, hung on the SSL as ex_data. */
struct ssl_data {
    struct fg_tls_ctx *t;
    int verify_err; /* first chain error the verify callback saw; 0 = none */
    int local;      /* client role: index of the local domain; -1 = none */
};

static int data_idx = -1;
static pthread_once_t data_once = PTHREAD_ONCE_INIT;

static void data_idx_init(void)
{
    data_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct ssl_data *ssl_data(const SSL *ssl)
{
    return ssl ? SSL_get_ex_data(ssl, data_idx) : NULL;
}

const char *fg_tls_last_error(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, len, "unknown error");
    } else {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(buf, len, "%s", r);
        else
            ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

/* Accepts every chain and remembers the first problem: SPEC section 3 wants a missing or
 * bad peer certificate to decide only what is offered later (EXTERNAL, dialback). */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct ssl_data *d = ssl_data(ssl);
    if (!ok && d && !d->verify_err) {
        int e = X509_STORE_CTX_get_error(xs);
        d->verify_err = e ? e : X509_V_ERR_UNSPECIFIED;
    }
    return 1;
}

/* Index of the hosted domain for an SNI name: the exact name, else the longest domain the
 * name is a subdomain of; -1 when none. */
static int find_domain(const struct fg_tls_ctx *t, const char *name)
{
    size_t nl = strlen(name);
    if (nl && name[nl - 1] == '.')
        nl--;
    int best = -1;
    size_t best_len = 0;
    for (size_t i = 0; t->names && i < t->n; i++) {
        const char *d = t->names[i];
        size_t dl = strlen(d);
        if (nl == dl && strncasecmp(name, d, dl) == 0)
            return (int)i;
        if (nl > dl && name[nl - dl - 1] == '.' && strncasecmp(name + nl - dl, d, dl) == 0 &&
            dl > best_len) {
            best = (int)i;
            best_len = dl;
        }
    }
    return best;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    struct fg_tls_ctx *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_NOACK;
    int i = find_domain(t, name);
    /* an unknown name keeps the default certificate: the stream header's 'to' then
     * gets an answer a person can read (host-unknown) instead of a TLS alert */
    if (i >= 0 && SSL_get_SSL_CTX(ssl) != t->ctx[i] && SSL_set_SSL_CTX(ssl, t->ctx[i]) != t->ctx[i])
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x0bxmpp-client\x0bxmpp-server";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static X509_STORE *load_store(const char *ca_file, char *err, size_t errlen)
{
    char why[256];
    X509_STORE *st = X509_STORE_new();
    if (!st) {
        snprintf(err, errlen, "cannot create a trust store: %s",
                 fg_tls_last_error(why, sizeof why));
        return NULL;
    }
    if (ca_file && *ca_file) {
        if (X509_STORE_load_file(st, ca_file) != 1) {
            snprintf(err, errlen, "%s: cannot load the trust store (ca_file): %s", ca_file,
                     fg_tls_last_error(why, sizeof why));
            X509_STORE_free(st);
            return NULL;
        }
    } else if (X509_STORE_set_default_paths(st) != 1) {
        snprintf(err, errlen, "cannot load the system trust store: %s",
                 fg_tls_last_error(why, sizeof why));
        X509_STORE_free(st);
        return NULL;
    }
    return st;
}

static SSL_CTX *new_ssl_ctx(struct fg_tls_ctx *t, X509_STORE *store, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *c = SSL_CTX_new(t->server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 fg_tls_last_error(why, sizeof why));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    /* idle connections give their record buffers back (DESIGN.md: 24 KB per TLS link) */
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verify_cb);
    SSL_CTX_set1_cert_store(c, store);
    if (t->server) {
        static const unsigned char sid[] = "fedgate";
        SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
        /* resumption through stateless tickets only: no per-session memory on our side */
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(c, 1);
        SSL_CTX_set_tlsext_servername_callback(c, servername_cb);
        SSL_CTX_set_tlsext_servername_arg(c, t);
        SSL_CTX_set_alpn_select_cb(c, alpn_cb, NULL);
    }
    return c;
}

void fg_tls_server_set_tickets(struct fg_tls_ctx *t, size_t n)
{
    if (!t || !t->server)
        return;
    for (size_t i = 0; i < t->n; i++)
        SSL_CTX_set_num_tickets(t->ctx[i], n);
}

static int load_cert(SSL_CTX *c, const char *cert_dir, const char *domain, char *err, size_t errlen)
{
    char why[256];
    char *crt = fg_asprintf("%s/%s.crt", cert_dir, domain);
    char *key = fg_asprintf("%s/%s.key", cert_dir, domain);
    int rc = FG_EINVAL;
    if (SSL_CTX_use_certificate_chain_file(c, crt) != 1) {
        snprintf(err, errlen, "%s: cannot load the certificate chain of %s: %s", crt, domain,
                 fg_tls_last_error(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "%s: cannot load the private key of %s: %s", key, domain,
                 fg_tls_last_error(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        snprintf(err, errlen, "%s does not match the certificate %s: %s", key, crt,
                 fg_tls_last_error(why, sizeof why));
        goto fail;
    }
    rc = FG_OK;
fail:
    fg_free(crt);
    fg_free(key);
    return rc;
}

static void ctx_destroy(struct fg_tls_ctx *t)
{
    for (size_t i = 0; i < t->n; i++)
        SSL_CTX_free(t->ctx[i]);
    fg_free(t->ctx);
    fg_strv_free(t->names);
    fg_free(t);
}

static struct fg_tls_ctx *ctx_new(bool server, const char *cert_dir, char *const *domains,
                                  const char *ca_file, char *err, size_t errlen)
{
    pthread_once(&data_once, data_idx_init);
    if (data_idx < 0) {
        snprintf(err, errlen, "cannot allocate OpenSSL ex_data");
        return NULL;
    }
    size_t n = domains ? fg_strv_len(domains) : 0;
    if (server && (!cert_dir || n == 0)) {
        snprintf(err, errlen, "a TLS server needs cert_dir and at least one domain");
        return NULL;
    }
    if (!server && n && !cert_dir) {
        snprintf(err, errlen, "client certificates need cert_dir");
        return NULL;
    }
    struct fg_tls_ctx *t = fg_calloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    t->server = server;
    t->names = n ? fg_strv_dup(domains) : NULL;
    size_t want = n ? n : 1;
    t->ctx = fg_calloc(want, sizeof *t->ctx);
    X509_STORE *store = load_store(ca_file, err, errlen);
    if (!store)
        goto fail;
    for (; t->n < want; t->n++) {
        t->ctx[t->n] = new_ssl_ctx(t, store, err, errlen);
        if (!t->ctx[t->n])
            goto fail;
        if (n && load_cert(t->ctx[t->n], cert_dir, t->names[t->n], err, errlen) != FG_OK) {
            t->n++;
            goto fail;
        }
    }
    X509_STORE_free(store);
    return t;
fail:
    X509_STORE_free(store);
    ctx_destroy(t);
    return NULL;
}

struct fg_tls_ctx *fg_tls_server_new(const char *cert_dir, char *const *domains,
                                     const char *ca_file, char *err, size_t errlen)
{
    return ctx_new(true, cert_dir, domains, ca_file, err, errlen);
}

struct fg_tls_ctx *fg_tls_client_new(const char *ca_file, const char *cert_dir,
                                     char *const *domains, char *err, size_t errlen)
{
    return ctx_new(false, cert_dir, domains, ca_file, err, errlen);
}

struct fg_tls_ctx *fg_tls_ctx_ref(struct fg_tls_ctx *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void fg_tls_ctx_free(struct fg_tls_ctx *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        ctx_destroy(t);
}

bool fg_tls_ctx_is_server(const struct fg_tls_ctx *t)
{
    return t->server;
}

SSL *fg_tls_ssl_new(struct fg_tls_ctx *t, const char *sni, const char *local_domain,
                    const char *alpn, char *err, size_t errlen)
{
    char why[256];
    int idx = 0;
    if (t->server && local_domain) {
        idx = find_domain(t, local_domain);
        if (idx < 0)
            idx = 0;
    } else if (!t->server && local_domain && t->names) {
        idx = -1;
        for (size_t i = 0; i < t->n; i++)
            if (strcasecmp(t->names[i], local_domain) == 0)
                idx = (int)i;
        if (idx < 0) {
            snprintf(err, errlen, "no client certificate for %s", local_domain);
            return NULL;
        }
    }
    ERR_clear_error();
    SSL *ssl = SSL_new(t->ctx[idx]);
    if (!ssl) {
        snprintf(err, errlen, "cannot create a TLS session: %s",
                 fg_tls_last_error(why, sizeof why));
        return NULL;
    }
    struct ssl_data *d = fg_calloc(1, sizeof *d);
    d->t = fg_tls_ctx_ref(t);
    d->local = t->names ? idx : -1;
    SSL_set_ex_data(ssl, data_idx, d);
    if (t->server) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    SSL_set_connect_state(ssl);
    if (sni && SSL_set_tlsext_host_name(ssl, sni) != 1) {
        snprintf(err, errlen, "invalid TLS server name '%s': %s", sni,
                 fg_tls_last_error(why, sizeof why));
        goto fail;
    }
    if (alpn) {
        size_t al = strlen(alpn);
        unsigned char wire[256];
        if (al == 0 || al > 255) {
            snprintf(err, errlen, "invalid ALPN protocol name");
            goto fail;
        }
        wire[0] = (unsigned char)al;
        memcpy(wire + 1, alpn, al);
        if (SSL_set_alpn_protos(ssl, wire, (unsigned)al + 1) != 0) {
            snprintf(err, errlen, "cannot set ALPN: %s", fg_tls_last_error(why, sizeof why));
            goto fail;
        }
    }
    return ssl;
fail:
    fg_tls_ssl_free(ssl);
    return NULL;
}

void fg_tls_ssl_free(SSL *ssl)
{
    if (!ssl)
        return;
    struct ssl_data *d = ssl_data(ssl);
    SSL_free(ssl);
    if (d) {
        fg_tls_ctx_free(d->t);
        fg_free(d);
    }
}

const char *fg_tls_ssl_domain(const SSL *ssl)
{
    struct ssl_data *d = ssl_data(ssl);
    if (!d || !d->t->names)
        return NULL;
    if (!d->t->server)
        return d->local >= 0 ? d->t->names[d->local] : NULL;
    SSL_CTX *cur = SSL_get_SSL_CTX(ssl);
    for (size_t i = 0; i < d->t->n; i++)
        if (d->t->ctx[i] == cur)
            return d->t->names[i];
    return NULL;
}

bool fg_tls_ssl_peer_verified(const SSL *ssl)
{
    struct ssl_data *d = ssl_data(ssl);
    return d && !d->verify_err && SSL_get0_peer_certificate(ssl) &&
           SSL_get_verify_result(ssl) == X509_V_OK;
}

const char *fg_tls_ssl_verify_error(const SSL *ssl)
{
    struct ssl_data *d = ssl_data(ssl);
    if (!d)
        return "no TLS";
    if (!SSL_get0_peer_certificate(ssl))
        return "no certificate";
    if (d->verify_err)
        return X509_verify_cert_error_string(d->verify_err);
    long r = SSL_get_verify_result(ssl);
    return r == X509_V_OK ? NULL : X509_verify_cert_error_string(r);
}
