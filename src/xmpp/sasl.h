/* sasl.h - server-side SASL for client streams, sans I/O: SCRAM-SHA-256 and SCRAM-SHA-1
 * (RFC 5802, 7677) with -PLUS channel binding (tls-exporter RFC 9266, tls-unique RFC 5929)
 * against the stored StoredKey/ServerKey, and PLAIN (RFC 4616) checked by deriving from
 * the stored salt. Raw mechanism messages in and out: base64 and XML are the caller's.
 *
 * Identities: the client names a "simple user name" (RFC 6120 section 6.3.7), optionally
 * followed by "@" and the stream's domain; it is prepared with the rule fedgatectl uses
 * (fg_user_jid_prepare: ASCII case folding) and looked up as localpart@domain through
 * the get_user callback. An unknown user gets
 * the same exchange as a known one (a stable fake salt, failure only at the proof), so
 * the answers never tell whether an account exists.
 *
 * Error convention: fg_sasl_step returns a status; on FG_SASL_FAILURE the RFC 6120
 * section 6.5 condition, a text for the client and a reason for logs are available. */
#ifndef FG_SASL_H
#define FG_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

struct fg_user;

/* In order of preference (what the features list offers first). */
enum fg_sasl_mech {
    FG_SASL_MECH_NONE = 0,
    FG_SASL_SCRAM_SHA_256_PLUS,
    FG_SASL_SCRAM_SHA_1_PLUS,
    FG_SASL_SCRAM_SHA_256,
    FG_SASL_SCRAM_SHA_1,
    FG_SASL_PLAIN,
    FG_SASL_MECH_COUNT
};

/* "SCRAM-SHA-256-PLUS", ...; "" for NONE. */
const char *fg_sasl_mech_name(enum fg_sasl_mech m);
/* The mechanism named s[0..len) exactly (SASL names are upper case); NONE if unknown. */
enum fg_sasl_mech fg_sasl_mech_parse(const char *s, size_t len);
bool fg_sasl_mech_is_plus(enum fg_sasl_mech m);

/* RFC 6120 section 6.5 conditions. */
enum fg_sasl_cond {
    FG_SASL_COND_NONE = 0,
    FG_SASL_COND_ABORTED,
    FG_SASL_COND_ACCOUNT_DISABLED,
    FG_SASL_COND_CREDENTIALS_EXPIRED,
    FG_SASL_COND_ENCRYPTION_REQUIRED,
    FG_SASL_COND_INCORRECT_ENCODING,
    FG_SASL_COND_INVALID_AUTHZID,
    FG_SASL_COND_INVALID_MECHANISM,
    FG_SASL_COND_MALFORMED_REQUEST,
    FG_SASL_COND_MECHANISM_TOO_WEAK,
    FG_SASL_COND_NOT_AUTHORIZED,
    FG_SASL_COND_TEMPORARY_AUTH_FAILURE,
};

/* The element name ("not-authorized"); "" for NONE. */
const char *fg_sasl_cond_name(enum fg_sasl_cond c);

/* Channel-binding data of the stream (borrowed: must outlive the exchange). */
struct fg_sasl_cbind {
    const unsigned char *tls_exporter; /* RFC 9266, 32 bytes; NULL = not available */
    size_t tls_exporter_len;
    const unsigned char *tls_unique; /* RFC 5929 (TLS 1.2 Finished); NULL = not available */
    size_t tls_unique_len;
};

struct fg_sasl_params {
    const char *domain;             /* the stream's hosted domain (A-label) */
    const struct fg_sasl_cbind *cb; /* NULL = no channel binding on this stream */
    /* -PLUS was advertised on this stream: a client 'y' flag then means a downgrade. */
    bool plus_offered;
    /* 0 and the user, FG_ENOTFOUND, or another negative code (temporary failure). */
    int (*get_user)(void *ud, const char *bare_jid, struct fg_user *out);
    void *ud;
};

enum fg_sasl_status {
    FG_SASL_CONTINUE, /* out holds a challenge (possibly empty) */
    FG_SASL_SUCCESS,  /* out holds additional data with success (possibly empty) */
    FG_SASL_FAILURE,  /* see fg_sasl_cond, _text, _reason */
};

struct fg_sasl;

/* A new exchange; params are copied (the pointers inside are borrowed). NULL for
 * NONE or an unknown mechanism. */
struct fg_sasl *fg_sasl_new(enum fg_sasl_mech mech, const struct fg_sasl_params *params);
void fg_sasl_free(struct fg_sasl *s);

/* One step. in[0..len) is the client's decoded message; has_in is false when it sent
 * none (an <auth/> without initial response: the answer is an empty challenge). The
 * server's message is appended to out. After SUCCESS or FAILURE every call fails. */
enum fg_sasl_status fg_sasl_step(struct fg_sasl *s, const char *in, size_t len, bool has_in,
                                 struct fg_buf *out);

enum fg_sasl_cond fg_sasl_cond(const struct fg_sasl *s);
/* False for failures that say nothing about the credentials (a channel-binding type we
 * do not have): those do not count towards auth_attempts. */
bool fg_sasl_counts_as_attempt(const struct fg_sasl *s);
/* For the client's <text/>: says nothing about whether the account exists. */
const char *fg_sasl_text(const struct fg_sasl *s);
/* For logs ("wrong password", "unknown user", "channel binding mismatch"). */
const char *fg_sasl_reason(const struct fg_sasl *s);
/* The bare JID the client named, prepared ("" before it did or when unusable);
 * authenticated only after SUCCESS. */
const char *fg_sasl_user(const struct fg_sasl *s);

/* Base64 (RFC 4648, padding required, no whitespace). Decodes into out (at most
 * outcap bytes): 0, or FG_EINVAL for bad input, FG_ELIMIT when out is too small. */
int fg_sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outcap,
                       size_t *outlen);
void fg_sasl_b64_encode(struct fg_buf *b, const void *in, size_t len);

/* A SASL user name as fedgatectl stores accounts: "local" or "local@domain" (that domain
 * being the stream's), prepared by policy's fg_user_jid_prepare into out. 0 or
 * FG_EINVAL. */
int fg_sasl_prep_user(const char *user, size_t len, const char *domain, char *out, size_t outlen);

#endif
