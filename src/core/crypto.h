/* crypto.h - the secrets fedgate keeps: random tokens, argon2id administrator password
 * hashes (libargon2), SCRAM salted credentials for users (RFC 5802/7677, PBKDF2 through
 * OpenSSL), SHA-256 hashes of API tokens. No I/O besides the system's random source. */
#ifndef FG_CRYPTO_H
#define FG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

/* Fills out with 2*nbytes lowercase hex characters of randomness plus NUL. 0 or FG_EIO. */
int fg_random_hex(char *out, size_t nbytes);
/* A random password of len characters from an unambiguous alphabet. */
int fg_random_password(char *out, size_t len);

/* argon2id encoded hash ("$argon2id$v=19$m=...") of password into out (>= 128 bytes). */
int fg_password_hash(const char *password, char *out, size_t outlen);
/* true when password matches the encoded hash. */
bool fg_password_verify(const char *password, const char *encoded);

/* SCRAM credentials: salt (base64), iterations, StoredKey and ServerKey (base64) for
 * "SHA-1" or "SHA-256". Fills the fields of struct fg_scram_cred (store/store.h). */
struct fg_scram_cred;
int fg_scram_derive(const char *password, const char *hash_name, int iterations,
                    struct fg_scram_cred *out);

/* Lowercase hex SHA-256 of data into out (65 bytes). */
void fg_sha256_hex(const void *data, size_t len, char *out);

#endif
