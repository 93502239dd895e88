/* dialback.c - XEP-0185 key generation and checking with OpenSSL's HMAC; the s2s stream
 * machine (s2s.c) and the glue's authoritative role use it. Nothing here sees a socket. */
#include "xmpp/dialback.h"
#include "core/err.h"
#include "policy/policy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <string.h>

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void fg_dialback_secret_init(struct fg_dialback_secret *s, const void *secret, size_t len)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(secret, len, d);
    to_hex(d, sizeof d, s->hex);
    OPENSSL_cleanse(d, sizeof d);
}

void fg_dialback_secret_clear(struct fg_dialback_secret *s)
{
    OPENSSL_cleanse(s->hex, sizeof s->hex);
}

static bool part_ok(const char *p, size_t max)
{
    if (!p || !*p)
        return false;
    return strnlen(p, max + 1) <= max;
}

int fg_dialback_key(const struct fg_dialback_secret *s, const char *receiving,
                    const char *originating, const char *stream_id, char *out, size_t outlen)
{
    if (!s || !out || outlen < FG_DIALBACK_KEY_LEN + 1 || !part_ok(receiving, FG_DOMAIN_MAX) ||
        !part_ok(originating, FG_DOMAIN_MAX) || !part_ok(stream_id, FG_DIALBACK_ID_MAX))
        return FG_EINVAL;
    /* "receiving originating id": at most 253 + 1 + 253 + 1 + 255 bytes */
    char msg[2 * FG_DOMAIN_MAX + FG_DIALBACK_ID_MAX + 3];
    size_t rl = strlen(receiving), ol = strlen(originating), il = strlen(stream_id), n = 0;
    memcpy(msg + n, receiving, rl);
    n += rl;
    msg[n++] = ' ';
    memcpy(msg + n, originating, ol);
    n += ol;
    msg[n++] = ' ';
    memcpy(msg + n, stream_id, il);
    n += il;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), s->hex, FG_DIALBACK_KEY_LEN, (const unsigned char *)msg, n, mac,
              &maclen) ||
        maclen != SHA256_DIGEST_LENGTH)
        return FG_EINVAL;
    to_hex(mac, maclen, out);
    return FG_OK;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool fg_dialback_key_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    return alen == 0 || CRYPTO_memcmp(a, b, alen) == 0;
}

bool fg_dialback_verify(const struct fg_dialback_secret *s, const char *receiving,
                        const char *originating, const char *stream_id, const char *key, size_t len)
{
    if (!key)
        return false;
    while (len && is_space(*key)) {
        key++;
        len--;
    }
    while (len && is_space(key[len - 1]))
        len--;
    char want[FG_DIALBACK_KEY_LEN + 1];
    if (fg_dialback_key(s, receiving, originating, stream_id, want, sizeof want) != FG_OK)
        return false;
    bool ok = fg_dialback_key_equal(want, FG_DIALBACK_KEY_LEN, key, len);
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}
