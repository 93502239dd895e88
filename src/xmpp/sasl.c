/* sasl.c - SCRAM-SHA-1/-256(-PLUS) and PLAIN, server side, with OpenSSL for the hashes
 * and libgsasl for SASLprep. Not libgsasl's SCRAM server: it cannot say why an exchange
 * failed (the logs need it), allocates per field, and compares keys with memcmp. */
#include "xmpp/sasl.h"
#include "core/alloc.h"
#include "core/err.h"
#include "policy/policy.h"
#include "store/store.h"

#include <gsasl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define LOCAL_MAX 1023                    /* RFC 7622 localpart, bytes */
#define JID_MAX (LOCAL_MAX + 1 + 253 + 1) /* bare JID with NUL */
#define MSG_MAX 8192                      /* one client SCRAM message */
#define PASS_MAX 1024
#define SNONCE_BYTES 18      /* 24 base64 characters, no padding */
#define FAKE_ITERATIONS 4096 /* what fedgatectl uses */
#define ITER_MAX 100000000

struct fg_sasl {
    enum fg_sasl_mech mech;
    const EVP_MD *md;
    unsigned hlen;
    int step; /* 0: first message, 1: SCRAM client-final, 2: finished */
    struct fg_sasl_params p;
    char cbflag;              /* 'n', 'y' or 'p' */
    bool user_ok;             /* the user exists and has usable keys for this hash */
    const char *user_problem; /* for logs when !user_ok */
    enum fg_sasl_cond cond;
    const char *text, *reason;
    bool negotiation; /* the failure says nothing about the credentials */
    char user[JID_MAX];
    unsigned char stored[EVP_MAX_MD_SIZE], server[EVP_MAX_MD_SIZE];
    struct fg_buf authmsg; /* client-first-bare "," server-first ["," client-final-w/o-proof] */
    size_t nonce_off, nonce_len; /* the combined nonce, inside authmsg */
    struct fg_buf cbind;         /* the c= value we expect, base64 */
};

static const char *const mech_names[FG_SASL_MECH_COUNT] = {
    [FG_SASL_MECH_NONE] = "",
    [FG_SASL_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
    [FG_SASL_SCRAM_SHA_1_PLUS] = "SCRAM-SHA-1-PLUS",
    [FG_SASL_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [FG_SASL_SCRAM_SHA_1] = "SCRAM-SHA-1",
    [FG_SASL_PLAIN] = "PLAIN",
};

static const char *const cond_names[] = {
    [FG_SASL_COND_NONE] = "",
    [FG_SASL_COND_ABORTED] = "aborted",
    [FG_SASL_COND_ACCOUNT_DISABLED] = "account-disabled",
    [FG_SASL_COND_CREDENTIALS_EXPIRED] = "credentials-expired",
    [FG_SASL_COND_ENCRYPTION_REQUIRED] = "encryption-required",
    [FG_SASL_COND_INCORRECT_ENCODING] = "incorrect-encoding",
    [FG_SASL_COND_INVALID_AUTHZID] = "invalid-authzid",
    [FG_SASL_COND_INVALID_MECHANISM] = "invalid-mechanism",
    [FG_SASL_COND_MALFORMED_REQUEST] = "malformed-request",
    [FG_SASL_COND_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
    [FG_SASL_COND_NOT_AUTHORIZED] = "not-authorized",
    [FG_SASL_COND_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
};

static const char WRONG_CREDS[] = "wrong user name or password";

const char *fg_sasl_mech_name(enum fg_sasl_mech m)
{
    return (unsigned)m < FG_SASL_MECH_COUNT ? mech_names[m] : "";
}

enum fg_sasl_mech fg_sasl_mech_parse(const char *s, size_t len)
{
    for (int m = 1; m < FG_SASL_MECH_COUNT; m++)
        if (strlen(mech_names[m]) == len && memcmp(mech_names[m], s, len) == 0)
            return (enum fg_sasl_mech)m;
    return FG_SASL_MECH_NONE;
}

bool fg_sasl_mech_is_plus(enum fg_sasl_mech m)
{
    return m == FG_SASL_SCRAM_SHA_256_PLUS || m == FG_SASL_SCRAM_SHA_1_PLUS;
}

const char *fg_sasl_cond_name(enum fg_sasl_cond c)
{
    return (unsigned)c < sizeof cond_names / sizeof cond_names[0] ? cond_names[c] : "";
}

/* ---- base64 ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int fg_sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outcap,
                       size_t *outlen)
{
    *outlen = 0;
    if (len % 4)
        return FG_EINVAL;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64val(c)) < 0) /* data after '=' or a bad character */
                return FG_EINVAL;
        }
        /* canonical form only (RFC 4648 section 3.5): unused bits are zero */
        if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
            return FG_EINVAL;
        unsigned char b[3] = {(unsigned char)(v[0] << 2 | v[1] >> 4),
                              (unsigned char)((v[1] & 15) << 4 | v[2] >> 2),
                              (unsigned char)((v[2] & 3) << 6 | v[3])};
        size_t nb = 3 - (size_t)pad;
        if (n + nb > outcap)
            return FG_ELIMIT;
        memcpy(out + n, b, nb);
        n += nb;
    }
    *outlen = n;
    return FG_OK;
}

void fg_sasl_b64_encode(struct fg_buf *b, const void *in, size_t len)
{
    const unsigned char *s = in;
    char q[4];
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        q[0] = b64chars[v >> 18 & 63];
        q[1] = b64chars[v >> 12 & 63];
        q[2] = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
        q[3] = i + 2 < len ? b64chars[v & 63] : '=';
        fg_buf_append(b, q, 4);
    }
}

/* ---- identities ---- */

int fg_sasl_prep_user(const char *user, size_t len, const char *domain, char *out, size_t outlen)
{
    /* one rule for fedgatectl, the API and logins: policy's fg_user_jid_prepare, with the
     * stream's domain as the only one allowed */
    char in[JID_MAX];
    char *const hosted[] = {(char *)domain, NULL};
    const char *why = NULL;
    bool has_at = memchr(user, '@', len) != NULL;
    size_t dl = strlen(domain);
    if (len == 0 || len + (has_at ? 0 : 1 + dl) + 1 > sizeof in || memchr(user, '\0', len))
        return FG_EINVAL;
    memcpy(in, user, len);
    if (has_at) {
        in[len] = '\0';
    } else {
        in[len] = '@';
        memcpy(in + len + 1, domain, dl + 1);
    }
    return fg_user_jid_prepare(in, hosted, out, outlen, &why) == FG_OK ? FG_OK : FG_EINVAL;
}

/* A salt for users that do not exist, stable per name so that asking twice tells
 * nothing: HMAC(process secret, hash name, bare JID). */
static unsigned char fake_secret[32];
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;

static void fake_init(void)
{
    if (RAND_bytes(fake_secret, sizeof fake_secret) != 1)
        memset(fake_secret, 0x5a, sizeof fake_secret); /* still hides nothing worse */
}

static void fake_cred(const char *hash, const char *bare, struct fg_scram_cred *c)
{
    pthread_once(&fake_once, fake_init);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    char msg[JID_MAX + 16];
    int n = snprintf(msg, sizeof msg, "%s:%s", hash, bare);
    HMAC(EVP_sha256(), fake_secret, sizeof fake_secret, (const unsigned char *)msg,
         (size_t)(n < 0 ? 0 : n), mac, &ml);
    struct fg_buf b = {0};
    fg_sasl_b64_encode(&b, mac, 16);
    snprintf(c->salt, sizeof c->salt, "%s", fg_buf_str(&b));
    fg_buf_free(&b);
    c->iterations = FAKE_ITERATIONS;
    c->stored_key[0] = c->server_key[0] = '\0';
}

/* Looks the user up and keeps its keys for this hash. The salt and iterations to
 * announce go to *cred: fake ones, and keys no proof can match, when the user is
 * unusable (s->user_problem says why). FG_EIO when the lookup itself failed. */
static int load_user(struct fg_sasl *s, struct fg_scram_cred *cred)
{
    s->user_ok = false;
    s->user_problem = "unknown user";
    if (s->user[0]) {
        struct fg_user u;
        memset(&u, 0, sizeof u);
        int rc = s->p.get_user ? s->p.get_user(s->p.ud, s->user, &u) : FG_ENOTFOUND;
        if (rc == FG_OK) {
            const struct fg_scram_cred *c = s->md == EVP_sha1() ? &u.sha1 : &u.sha256;
            size_t l1 = 0, l2 = 0;
            if (c->iterations <= 0 || c->iterations > ITER_MAX || !c->salt[0]) {
                s->user_problem = s->md == EVP_sha1() ? "no SHA-1 credentials stored"
                                                      : "no SHA-256 credentials stored";
            } else if (fg_sasl_b64_decode(c->stored_key, strlen(c->stored_key), s->stored,
                                          sizeof s->stored, &l1) != FG_OK ||
                       fg_sasl_b64_decode(c->server_key, strlen(c->server_key), s->server,
                                          sizeof s->server, &l2) != FG_OK ||
                       l1 != s->hlen || l2 != s->hlen) {
                s->user_problem = "stored credentials are unusable";
            } else {
                *cred = *c;
                s->user_ok = true;
                s->user_problem = NULL;
            }
        }
        OPENSSL_cleanse(&u, sizeof u);
        if (rc != FG_OK && rc != FG_ENOTFOUND)
            return FG_EIO;
    }
    if (!s->user_ok) {
        fake_cred(s->md == EVP_sha1() ? "SHA-1" : "SHA-256", s->user, cred);
        if (RAND_bytes(s->stored, sizeof s->stored) != 1)
            memset(s->stored, 0xa5, sizeof s->stored);
        memcpy(s->server, s->stored, sizeof s->server);
    }
    return FG_OK;
}

/* ---- the exchange ---- */

struct fg_sasl *fg_sasl_new(enum fg_sasl_mech mech, const struct fg_sasl_params *params)
{
    const EVP_MD *md;
    switch (mech) {
    case FG_SASL_SCRAM_SHA_256_PLUS:
    case FG_SASL_SCRAM_SHA_256:
    case FG_SASL_PLAIN:
        md = EVP_sha256();
        break;
    case FG_SASL_SCRAM_SHA_1_PLUS:
    case FG_SASL_SCRAM_SHA_1:
        md = EVP_sha1();
        break;
    default:
        return NULL;
    }
    struct fg_sasl *s = fg_calloc(1, sizeof *s);
    s->mech = mech;
    s->md = md;
    s->hlen = (unsigned)EVP_MD_get_size(md);
    s->p = *params;
    return s;
}

void fg_sasl_free(struct fg_sasl *s)
{
    if (!s)
        return;
    fg_buf_free(&s->authmsg);
    fg_buf_free(&s->cbind);
    OPENSSL_cleanse(s, sizeof *s);
    fg_free(s);
}

bool fg_sasl_counts_as_attempt(const struct fg_sasl *s)
{
    return !s->negotiation;
}

enum fg_sasl_cond fg_sasl_cond(const struct fg_sasl *s)
{
    return s->cond;
}

const char *fg_sasl_text(const struct fg_sasl *s)
{
    return s->text ? s->text : "";
}

const char *fg_sasl_reason(const struct fg_sasl *s)
{
    return s->reason ? s->reason : "";
}

const char *fg_sasl_user(const struct fg_sasl *s)
{
    return s->user;
}

static enum fg_sasl_status fail(struct fg_sasl *s, enum fg_sasl_cond cond, const char *text,
                                const char *reason)
{
    s->step = 2;
    s->cond = cond;
    s->text = text;
    s->reason = reason;
    return FG_SASL_FAILURE;
}

static enum fg_sasl_status malformed(struct fg_sasl *s, const char *why)
{
    return fail(s, FG_SASL_COND_MALFORMED_REQUEST, why, why);
}

/* ---- SCRAM (RFC 5802 section 7) ---- */

struct cursor {
    const char *p, *end;
};

/* The value of "k=" up to the next ',' or the end. */
static bool take_attr(struct cursor *c, char k, const char **v, size_t *vl)
{
    if (c->end - c->p < 2 || c->p[0] != k || c->p[1] != '=')
        return false;
    const char *s = c->p + 2;
    const char *e = memchr(s, ',', (size_t)(c->end - s));
    if (!e)
        e = c->end;
    *v = s;
    *vl = (size_t)(e - s);
    c->p = e;
    return true;
}

static bool take_comma(struct cursor *c)
{
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return true;
    }
    return false;
}

/* saslname: "=2C" is ',', "=3D" is '=', any other '=' is an error. */
static bool unescape_saslname(const char *v, size_t vl, char *out, size_t cap, size_t *ol)
{
    size_t n = 0;
    for (size_t i = 0; i < vl; i++) {
        char ch = v[i];
        if (ch == '=') {
            if (i + 2 >= vl)
                return false;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                ch = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                ch = '=';
            else
                return false;
            i += 2;
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    *ol = n;
    return n > 0;
}

/* Optional extensions: ALPHA "=" value, each after a ','. Unknown ones are ignored
 * (RFC 5802 section 7); their syntax is still checked. */
static bool skip_extensions(struct cursor *c)
{
    while (c->p < c->end) {
        const char *v;
        size_t vl;
        if (!take_comma(c))
            return false;
        char k = c->p < c->end ? *c->p : 0;
        if (!((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z')) || !take_attr(c, k, &v, &vl))
            return false;
    }
    return true;
}

static bool printable_nonce(const char *v, size_t vl)
{
    if (vl == 0)
        return false;
    for (size_t i = 0; i < vl; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e || v[i] == ',')
            return false;
    return true;
}

static enum fg_sasl_status scram_first(struct fg_sasl *s, const char *in, size_t len,
                                       struct fg_buf *out)
{
    struct cursor c = {in, in + len};
    const char *v, *cbname = NULL;
    size_t vl, cbname_len = 0;
    bool plus = fg_sasl_mech_is_plus(s->mech);

    if (len > MSG_MAX)
        return malformed(s, "SCRAM message too long");
    if (memchr(in, '\0', len))
        return malformed(s, "NUL in SCRAM message");
    /* gs2-header */
    if (len >= 1 && (in[0] == 'n' || in[0] == 'y')) {
        s->cbflag = in[0];
        c.p++;
    } else if (take_attr(&c, 'p', &cbname, &cbname_len)) {
        s->cbflag = 'p';
        if (!cbname_len)
            return malformed(s, "empty channel binding name");
        for (size_t i = 0; i < cbname_len; i++) {
            char ch = cbname[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
                return malformed(s, "bad channel binding name");
        }
    } else {
        return malformed(s, "bad GS2 header");
    }
    if (!take_comma(&c))
        return malformed(s, "bad GS2 header");
    char authzid[JID_MAX];
    size_t azl = 0;
    bool has_authzid = false;
    if (take_attr(&c, 'a', &v, &vl)) {
        if (!unescape_saslname(v, vl, authzid, sizeof authzid, &azl))
            return malformed(s, "bad authorization identity");
        has_authzid = true;
    }
    if (!take_comma(&c))
        return malformed(s, "bad GS2 header");
    size_t gs2_len = (size_t)(c.p - in);
    const char *bare = c.p;

    /* client-first-message-bare */
    if (take_attr(&c, 'm', &v, &vl))
        return malformed(s, "mandatory SCRAM extension not supported");
    char uname[JID_MAX];
    size_t ul = 0;
    if (!take_attr(&c, 'n', &v, &vl))
        return malformed(s, "no user name");
    if (!unescape_saslname(v, vl, uname, sizeof uname, &ul))
        return malformed(s, "bad user name encoding");
    const char *cnonce;
    size_t cnonce_len;
    if (!take_comma(&c) || !take_attr(&c, 'r', &cnonce, &cnonce_len) ||
        !printable_nonce(cnonce, cnonce_len))
        return malformed(s, "bad client nonce");
    if (!skip_extensions(&c))
        return malformed(s, "bad SCRAM extension");

    if (fg_sasl_prep_user(uname, ul, s->p.domain, s->user, sizeof s->user) != FG_OK)
        s->user[0] = '\0';

    /* channel binding (RFC 5802 section 6) */
    const unsigned char *cbdata = NULL;
    size_t cbdata_len = 0;
    if (plus) {
        if (s->cbflag != 'p')
            return fail(s, FG_SASL_COND_NOT_AUTHORIZED, "-PLUS requires channel binding",
                        "-PLUS mechanism without channel binding");
        const struct fg_sasl_cbind *cb = s->p.cb;
        if (cb && cbname_len == 12 && memcmp(cbname, "tls-exporter", 12) == 0 && cb->tls_exporter) {
            cbdata = cb->tls_exporter;
            cbdata_len = cb->tls_exporter_len;
        } else if (cb && cbname_len == 10 && memcmp(cbname, "tls-unique", 10) == 0 &&
                   cb->tls_unique) {
            cbdata = cb->tls_unique;
            cbdata_len = cb->tls_unique_len;
        } else {
            s->negotiation = true;
            return fail(s, FG_SASL_COND_NOT_AUTHORIZED, "unsupported channel binding type",
                        "unsupported channel binding type");
        }
    } else if (s->cbflag == 'p') {
        return fail(s, FG_SASL_COND_NOT_AUTHORIZED, "channel binding needs a -PLUS mechanism",
                    "channel binding flag with a non-PLUS mechanism");
    } else if (s->cbflag == 'y' && s->p.plus_offered && s->p.cb && s->p.cb->tls_unique) {
        /* The client could bind but believes we cannot: someone removed -PLUS. Only
         * where tls-unique is on offer: under TLS 1.3 we offer tls-exporter alone, and a
         * client that knows only tls-unique says 'y' in good faith (doc/c2s-decisions.md). */
        return fail(s, FG_SASL_COND_NOT_AUTHORIZED, "channel binding downgrade detected",
                    "channel binding downgrade (client sent 'y' but -PLUS was offered)");
    }

    if (has_authzid) {
        char az[JID_MAX];
        if (fg_sasl_prep_user(authzid, azl, s->p.domain, az, sizeof az) != FG_OK || !s->user[0] ||
            strcmp(az, s->user) != 0)
            return fail(s, FG_SASL_COND_INVALID_AUTHZID, "authorization identity not allowed",
                        "authorization identity differs from the user");
    }

    struct fg_scram_cred cred;
    if (load_user(s, &cred) != FG_OK)
        return fail(s, FG_SASL_COND_TEMPORARY_AUTH_FAILURE, "try again later",
                    "user lookup failed");

    /* c= expected in client-final: base64(gs2-header [cb data]) */
    struct fg_buf raw = {0};
    fg_buf_append(&raw, in, gs2_len);
    if (cbdata)
        fg_buf_append(&raw, cbdata, cbdata_len);
    fg_buf_reset(&s->cbind);
    fg_sasl_b64_encode(&s->cbind, raw.data, raw.len);
    fg_buf_free(&raw);

    unsigned char sn[SNONCE_BYTES];
    if (RAND_bytes(sn, sizeof sn) != 1)
        return fail(s, FG_SASL_COND_TEMPORARY_AUTH_FAILURE, "try again later",
                    "no randomness for the server nonce");
    fg_buf_reset(&s->authmsg);
    fg_buf_append(&s->authmsg, bare, len - gs2_len);
    fg_buf_putc(&s->authmsg, ',');
    size_t sf_off = s->authmsg.len;
    fg_buf_append(&s->authmsg, "r=", 2);
    s->nonce_off = s->authmsg.len;
    fg_buf_append(&s->authmsg, cnonce, cnonce_len);
    fg_sasl_b64_encode(&s->authmsg, sn, sizeof sn);
    s->nonce_len = s->authmsg.len - s->nonce_off;
    fg_buf_printf(&s->authmsg, ",s=%s,i=%d", cred.salt, cred.iterations);
    fg_buf_append(out, s->authmsg.data + sf_off, s->authmsg.len - sf_off);
    OPENSSL_cleanse(&cred, sizeof cred);
    s->step = 1;
    return FG_SASL_CONTINUE;
}

static enum fg_sasl_status scram_final(struct fg_sasl *s, const char *in, size_t len,
                                       struct fg_buf *out)
{
    if (len > MSG_MAX)
        return malformed(s, "SCRAM message too long");
    if (memchr(in, '\0', len))
        return malformed(s, "NUL in SCRAM message");
    /* the proof is the last attribute; values never hold ',' */
    size_t wp = len;
    while (wp >= 3 && !(in[wp - 3] == ',' && in[wp - 2] == 'p' && in[wp - 1] == '='))
        wp--;
    if (wp < 3)
        return malformed(s, "no client proof");
    wp -= 3; /* client-final-message-without-proof is in[0..wp) */
    const char *proof_b64 = in + wp + 3;
    size_t proof_b64_len = len - wp - 3;
    if (memchr(proof_b64, ',', proof_b64_len))
        return malformed(s, "client proof is not the last attribute");

    struct cursor c = {in, in + wp};
    const char *cb, *nonce;
    size_t cbl, nl;
    if (!take_attr(&c, 'c', &cb, &cbl) || !take_comma(&c) || !take_attr(&c, 'r', &nonce, &nl))
        return malformed(s, "bad client-final message");
    if (!skip_extensions(&c))
        return malformed(s, "bad SCRAM extension");
    unsigned char proof[EVP_MAX_MD_SIZE];
    size_t pl = 0;
    if (fg_sasl_b64_decode(proof_b64, proof_b64_len, proof, sizeof proof, &pl) != FG_OK ||
        pl != s->hlen)
        return malformed(s, "bad client proof");

    if (cbl != s->cbind.len || memcmp(cb, s->cbind.data, cbl) != 0)
        return fail(s, FG_SASL_COND_NOT_AUTHORIZED, "channel binding mismatch",
                    "channel binding mismatch");
    if (nl != s->nonce_len || memcmp(nonce, s->authmsg.data + s->nonce_off, nl) != 0)
        return malformed(s, "nonce mismatch");

    fg_buf_putc(&s->authmsg, ',');
    fg_buf_append(&s->authmsg, in, wp);

    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) = StoredKey */
    unsigned char sig[EVP_MAX_MD_SIZE], key[EVP_MAX_MD_SIZE], chk[EVP_MAX_MD_SIZE];
    unsigned int sl = 0, kl = 0;
    if (!HMAC(s->md, s->stored, (int)s->hlen, (const unsigned char *)s->authmsg.data,
              s->authmsg.len, sig, &sl) ||
        sl != s->hlen)
        return fail(s, FG_SASL_COND_TEMPORARY_AUTH_FAILURE, "try again later", "HMAC failed");
    for (unsigned i = 0; i < s->hlen; i++)
        key[i] = proof[i] ^ sig[i];
    if (EVP_Digest(key, s->hlen, chk, &kl, s->md, NULL) != 1 || kl != s->hlen)
        return fail(s, FG_SASL_COND_TEMPORARY_AUTH_FAILURE, "try again later", "hash failed");
    bool match = CRYPTO_memcmp(chk, s->stored, s->hlen) == 0;
    OPENSSL_cleanse(key, sizeof key);
    if (!s->user_ok || !match)
        return fail(s, FG_SASL_COND_NOT_AUTHORIZED, WRONG_CREDS,
                    s->user_ok ? "wrong password" : s->user_problem);

    if (!HMAC(s->md, s->server, (int)s->hlen, (const unsigned char *)s->authmsg.data,
              s->authmsg.len, sig, &sl))
        return fail(s, FG_SASL_COND_TEMPORARY_AUTH_FAILURE, "try again later", "HMAC failed");
    fg_buf_append(out, "v=", 2);
    fg_sasl_b64_encode(out, sig, sl);
    s->step = 2;
    return FG_SASL_SUCCESS;
}

/* ---- PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd ---- */

/* Derives StoredKey from the password with the stored salt and iterations and compares
 * it with the stored one in constant time. *why is set when it cannot even try. */
static bool plain_check(const struct fg_scram_cred *cred, const EVP_MD *md, const char *pass,
                        const char **why)
{
    unsigned char salt[64], salted[EVP_MAX_MD_SIZE], ckey[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE],
        want[EVP_MAX_MD_SIZE];
    size_t saltl = 0, wl = 0;
    unsigned int hl = (unsigned int)EVP_MD_get_size(md), l1 = 0, l2 = 0;
    bool ok = false;
    char *prepped = NULL;
    if (gsasl_saslprep(pass, GSASL_ALLOW_UNASSIGNED, &prepped, NULL) != GSASL_OK) {
        *why = "password refused by SASLprep";
        goto done;
    }
    if (fg_sasl_b64_decode(cred->salt, strlen(cred->salt), salt, sizeof salt, &saltl) != FG_OK) {
        *why = "stored credentials are unusable";
        goto done;
    }
    if (PKCS5_PBKDF2_HMAC(prepped, (int)strlen(prepped), salt, (int)saltl, cred->iterations, md,
                          (int)hl, salted) != 1 ||
        !HMAC(md, salted, (int)hl, (const unsigned char *)"Client Key", 10, ckey, &l1) ||
        EVP_Digest(ckey, l1, stored, &l2, md, NULL) != 1) {
        *why = "key derivation failed";
        goto done;
    }
    if (cred->stored_key[0] &&
        fg_sasl_b64_decode(cred->stored_key, strlen(cred->stored_key), want, sizeof want, &wl) ==
            FG_OK &&
        wl == l2)
        ok = CRYPTO_memcmp(want, stored, l2) == 0;
done:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(ckey, sizeof ckey);
    if (prepped) {
        OPENSSL_cleanse(prepped, strlen(prepped));
        gsasl_free(prepped);
    }
    return ok;
}

static enum fg_sasl_status plain_step(struct fg_sasl *s, const char *in, size_t len)
{
    const char *z1 = memchr(in, '\0', len);
    const char *z2 = z1 ? memchr(z1 + 1, '\0', len - (size_t)(z1 + 1 - in)) : NULL;
    if (!z2)
        return malformed(s, "PLAIN message needs two NUL separators");
    const char *authcid = z1 + 1, *pass = z2 + 1;
    size_t azl = (size_t)(z1 - in), acl = (size_t)(z2 - authcid);
    size_t pl = len - (size_t)(pass - in);
    if (memchr(pass, '\0', pl))
        return malformed(s, "NUL in PLAIN password");
    if (acl == 0 || pl == 0)
        return malformed(s, "empty PLAIN user name or password");
    if (fg_sasl_prep_user(authcid, acl, s->p.domain, s->user, sizeof s->user) != FG_OK)
        s->user[0] = '\0';
    if (azl) {
        char az[JID_MAX];
        if (fg_sasl_prep_user(in, azl, s->p.domain, az, sizeof az) != FG_OK || !s->user[0] ||
            strcmp(az, s->user) != 0)
            return fail(s, FG_SASL_COND_INVALID_AUTHZID, "authorization identity not allowed",
                        "authorization identity differs from the user");
    }
    if (pl > PASS_MAX)
        return fail(s, FG_SASL_COND_NOT_AUTHORIZED, WRONG_CREDS, "password too long");

    /* SHA-256 keys when stored, else SHA-1; unknown users cost the same PBKDF2 */
    struct fg_user u;
    memset(&u, 0, sizeof u);
    const struct fg_scram_cred *cred = NULL;
    const EVP_MD *md = EVP_sha256();
    const char *why = "unknown user";
    int rc = s->user[0] && s->p.get_user ? s->p.get_user(s->p.ud, s->user, &u) : FG_ENOTFOUND;
    if (rc != FG_OK && rc != FG_ENOTFOUND)
        return fail(s, FG_SASL_COND_TEMPORARY_AUTH_FAILURE, "try again later",
                    "user lookup failed");
    if (rc == FG_OK) {
        if (u.sha256.iterations > 0 && u.sha256.iterations <= ITER_MAX) {
            cred = &u.sha256;
        } else if (u.sha1.iterations > 0 && u.sha1.iterations <= ITER_MAX) {
            cred = &u.sha1;
            md = EVP_sha1();
        } else {
            why = "no credentials stored";
        }
    }
    struct fg_scram_cred fake;
    bool real = cred != NULL;
    if (!real) {
        fake_cred("SHA-256", s->user, &fake);
        cred = &fake;
    }
    char pw[PASS_MAX + 1];
    memcpy(pw, pass, pl);
    pw[pl] = '\0';
    const char *check_why = "wrong password";
    bool ok = plain_check(cred, md, pw, &check_why);
    OPENSSL_cleanse(pw, sizeof pw);
    OPENSSL_cleanse(&u, sizeof u);
    if (!ok || !real)
        return fail(s, FG_SASL_COND_NOT_AUTHORIZED, WRONG_CREDS, real ? check_why : why);
    s->step = 2;
    return FG_SASL_SUCCESS;
}

enum fg_sasl_status fg_sasl_step(struct fg_sasl *s, const char *in, size_t len, bool has_in,
                                 struct fg_buf *out)
{
    if (s->step >= 2)
        return fail(s, FG_SASL_COND_MALFORMED_REQUEST, "exchange already finished",
                    "data after the end of the exchange");
    if (!has_in) {
        if (s->step == 0)
            return FG_SASL_CONTINUE; /* empty challenge: send the initial message now */
        return malformed(s, "empty response");
    }
    if (s->mech == FG_SASL_PLAIN)
        return plain_step(s, in, len);
    return s->step == 0 ? scram_first(s, in, len, out) : scram_final(s, in, len, out);
}
