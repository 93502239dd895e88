/* auth.h - the admin listener's login state, kept in memory: sessions (random ids, CSRF
 * tokens, idle and absolute expiry) and the login rate limiter (failures per address and
 * per account in a sliding window). Thread-safe; knows nothing of HTTP or the store. */
#ifndef FG_ADMIN_AUTH_H
#define FG_ADMIN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FG_ADMIN_SID_LEN 64  /* hex characters of a session id (32 random bytes) */
#define FG_ADMIN_CSRF_LEN 64 /* hex characters of a CSRF token */
#define FG_ADMIN_NAME_MAX 64 /* administrator names: 1..64 of A-Za-z0-9._- */

struct fg_admin_auth_limits {
    int64_t session_idle; /* seconds without a request before a session ends */
    int64_t session_max;  /* seconds after login when a session ends regardless */
    int64_t login_window; /* seconds a failed login counts against its address/account */
    int login_failures;   /* failures within the window that block further attempts */
    size_t max_sessions;  /* live sessions kept; the least recently used goes first */
};

/* Defaults: 30 min idle, 8 h absolute, 5 failures per 5 minutes, 1024 sessions. */
void fg_admin_auth_defaults(struct fg_admin_auth_limits *l);
/* Sets the limits and forgets every session and failure. */
void fg_admin_auth_init(const struct fg_admin_auth_limits *l);
/* Forgets everything and frees the tables. */
void fg_admin_auth_reset(void);

/* A session as a request sees it. */
struct fg_admin_session {
    char user[FG_ADMIN_NAME_MAX + 1];
    char csrf[FG_ADMIN_CSRF_LEN + 1];
};

/* Creates a session for user; sid and csrf get fresh random hex. 0 or FG_EIO. */
int fg_admin_session_create(const char *user, char sid[FG_ADMIN_SID_LEN + 1],
                            char csrf[FG_ADMIN_CSRF_LEN + 1]);
/* Finds a live session by id and marks it used now; expired ones are removed.
 * 0 with *out filled, or FG_ENOTFOUND. */
int fg_admin_session_get(const char *sid, struct fg_admin_session *out);
void fg_admin_session_drop(const char *sid);
/* Ends every session of user except the one with id keep_sid (NULL: all of them). */
void fg_admin_session_drop_user(const char *user, const char *keep_sid);
size_t fg_admin_session_count(void);

/* Login rate limiting. limited: true when address or user has had too many failures
 * within the window. failed: records one failure for both. succeeded: clears the
 * account's failures (the address keeps its own). */
bool fg_admin_login_limited(const char *address, const char *user);
void fg_admin_login_failed(const char *address, const char *user);
void fg_admin_login_succeeded(const char *user);

/* Constant-time comparison of two NUL-terminated secrets (the lengths may leak). */
bool fg_admin_secret_equal(const char *a, const char *b);

#endif
