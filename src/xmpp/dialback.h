/* dialback.h - dialback keys per XEP-0185: HMAC-SHA256 keyed with the hex SHA-256 of the
 * gateway's dialback secret over "Receiving Server, ' ', Originating Server, ' ', Stream
 * ID", as 64 lowercase hex characters, and their constant-time check. No I/O, no XML.
 *
 * Errors: int return, 0 ok or FG_EINVAL (an empty or over-long domain or stream id, a
 * buffer too small). The raw secret is not kept: only its hash, wiped by _clear. */
#ifndef FG_DIALBACK_H
#define FG_DIALBACK_H

#include <stdbool.h>
#include <stddef.h>

#define FG_DIALBACK_KEY_LEN 64 /* hex characters of a key, without the NUL */
#define FG_DIALBACK_ID_MAX 255 /* longest stream id accepted (bytes) */

/* The HMAC key derived from the secret: SHA256(secret) as lowercase hex (XEP-0185 2.2
 * and 2.4). Holds no pointers; copy it freely, wipe it with fg_dialback_secret_clear. */
struct fg_dialback_secret {
    char hex[FG_DIALBACK_KEY_LEN + 1];
};

void fg_dialback_secret_init(struct fg_dialback_secret *s, const void *secret, size_t len);
void fg_dialback_secret_clear(struct fg_dialback_secret *s);

/* The key for (receiving, originating, stream_id) into out (at least
 * FG_DIALBACK_KEY_LEN + 1 bytes). Domains are used as given (A-labels, as on the wire). */
int fg_dialback_key(const struct fg_dialback_secret *s, const char *receiving,
                    const char *originating, const char *stream_id, char *out, size_t outlen);

/* True when key[0..len) (XML whitespace around it ignored) is the key for these inputs.
 * The comparison does not depend on where the bytes differ. */
bool fg_dialback_verify(const struct fg_dialback_secret *s, const char *receiving,
                        const char *originating, const char *stream_id, const char *key,
                        size_t len);

/* Constant-time equality of two byte strings of public length (false when the lengths
 * differ). */
bool fg_dialback_key_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
