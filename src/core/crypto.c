/* crypto.c - random secrets, argon2id password hashes, SCRAM credentials and SHA-256.
 * Passwords pass through SASLprep (libgsasl) before SCRAM derivation, as RFC 5802 asks. */
#include "crypto.h"
#include "alloc.h"
#include "err.h"
#include "store/store.h"

#include <argon2.h>
#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* OWASP's 2023 argon2id floor: 19 MiB, 2 passes, 1 lane. */
#define ARGON_T 2
#define ARGON_M 19456
#define ARGON_P 1
#define SALT_LEN 16

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int fg_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[128];
    if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
        return FG_EIO;
    to_hex(raw, nbytes, out);
    return FG_OK;
}

int fg_random_password(char *out, size_t len)
{
    /* no 0/O, 1/l/I: easy to read back from a terminal */
    static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const size_t an = sizeof alphabet - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char b;
        do {
            if (RAND_bytes(&b, 1) != 1)
                return FG_EIO;
        } while (b >= 256 - 256 % an); /* no modulo bias */
        out[i] = alphabet[b % an];
    }
    out[len] = '\0';
    return FG_OK;
}

int fg_password_hash(const char *password, char *out, size_t outlen)
{
    unsigned char salt[SALT_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return FG_EIO;
    int rc = argon2id_hash_encoded(ARGON_T, ARGON_M, ARGON_P, password, strlen(password), salt,
                                   sizeof salt, 32, out, outlen);
    return rc == ARGON2_OK ? FG_OK : FG_EIO;
}

bool fg_password_verify(const char *password, const char *encoded)
{
    if (strncmp(encoded, "$argon2id$", 10) != 0)
        return false;
    return argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
}

static void b64(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    size_t need = 4 * ((n + 2) / 3) + 1; /* EVP_EncodeBlock writes the NUL too */
    if (need > outlen) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int fg_scram_derive(const char *password, const char *hash_name, int iterations,
                    struct fg_scram_cred *out)
{
    const EVP_MD *md = strcmp(hash_name, "SHA-1") == 0     ? EVP_sha1()
                       : strcmp(hash_name, "SHA-256") == 0 ? EVP_sha256()
                                                           : NULL;
    if (!md || iterations < 1)
        return FG_EINVAL;
    char *prepped = NULL;
    if (gsasl_saslprep(password, GSASL_ALLOW_UNASSIGNED, &prepped, NULL) != GSASL_OK)
        return FG_EINVAL;
    unsigned char salt[SALT_LEN], salted[EVP_MAX_MD_SIZE], ckey[EVP_MAX_MD_SIZE],
        skey[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
    unsigned int hl = (unsigned int)EVP_MD_get_size(md), l1 = 0, l2 = 0;
    int rc = FG_EIO;
    if (RAND_bytes(salt, sizeof salt) != 1)
        goto fail;
    if (PKCS5_PBKDF2_HMAC(prepped, (int)strlen(prepped), salt, sizeof salt, iterations, md,
                          (int)hl, salted) != 1)
        goto fail;
    if (!HMAC(md, salted, (int)hl, (const unsigned char *)"Client Key", 10, ckey, &l1) ||
        !HMAC(md, salted, (int)hl, (const unsigned char *)"Server Key", 10, skey, &l2))
        goto fail;
    if (EVP_Digest(ckey, l1, stored, NULL, md, NULL) != 1)
        goto fail;
    b64(salt, sizeof salt, out->salt, sizeof out->salt);
    b64(stored, hl, out->stored_key, sizeof out->stored_key);
    b64(skey, l2, out->server_key, sizeof out->server_key);
    out->iterations = iterations;
    rc = FG_OK;
fail:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(ckey, sizeof ckey);
    if (prepped) {
        OPENSSL_cleanse(prepped, strlen(prepped));
        gsasl_free(prepped);
    }
    return rc;
}

void fg_sha256_hex(const void *data, size_t len, char *out)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, len, d);
    to_hex(d, sizeof d, out);
}
