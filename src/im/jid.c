/* jid.c - JID splitting and the canonical form used as hash key (jid.h). The common case,
 * an ASCII JID already in lowercase, costs one pass and no copy. */
#include "im/jid.h"

#include <string.h>

#include "core/err.h"
#include "policy/policy.h"

/* RFC 7622 3.3.1: characters a localpart may not contain, besides controls and space. */
static bool bad_local_char(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' ||
           c == '<' || c == '>' || c == '@';
}

static bool is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

/* An ASCII domain: LDH labels, or an IP literal ([v6] or dotted v4), which a JID allows. */
static bool ascii_domain_ok(const char *d, size_t n)
{
    if (n >= 2 && d[0] == '[' && d[n - 1] == ']') {
        for (size_t i = 1; i + 1 < n; i++)
            if (!strchr("0123456789abcdefABCDEF:.", d[i]))
                return false;
        return true;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

int fg_im_jid_parse(struct fg_arena *arena, const char *s, struct fg_im_jid *j)
{
    memset(j, 0, sizeof *j);
    if (!s)
        return FG_EINVAL;
    size_t len = strlen(s);
    if (len == 0 || len > FG_IM_JID_MAX)
        return FG_EINVAL;

    const char *slash = memchr(s, '/', len);
    size_t head = slash ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', head);
    size_t local_len = at ? (size_t)(at - s) : 0;
    const char *dom = at ? at + 1 : s;
    size_t dom_len = head - (size_t)(dom - s);
    size_t res_len = slash ? len - head - 1 : 0;

    if ((at && local_len == 0) || local_len > FG_IM_JID_PART_MAX)
        return FG_EINVAL;
    if (slash && (res_len == 0 || res_len > FG_IM_JID_PART_MAX))
        return FG_EINVAL;
    if (dom_len == 0 || dom_len > FG_IM_JID_PART_MAX + 1)
        return FG_EINVAL;

    bool copy = false;
    for (size_t i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (bad_local_char(c))
            return FG_EINVAL;
        copy |= is_upper(c);
    }
    for (size_t i = 0; i < res_len; i++) {
        unsigned char c = (unsigned char)slash[1 + i];
        if (c < 0x20 || c == 0x7f)
            return FG_EINVAL;
    }

    /* The domain: ASCII is checked and lowercased here; anything else goes through
     * IDNA (policy/domain normalisation) to its A-label. */
    bool ascii = true;
    for (size_t i = 0; i < dom_len; i++) {
        unsigned char c = (unsigned char)dom[i];
        ascii &= c < 0x80;
        copy |= is_upper(c);
    }
    size_t d_len = dom_len;
    if (d_len > 1 && dom[d_len - 1] == '.' && dom[0] != '[') {
        d_len--; /* the absolute form names the same domain */
        copy = true;
    }
    char alabel[FG_DOMAIN_MAX + 1];
    const char *dsrc = dom;
    if (ascii) {
        if (d_len > FG_IM_JID_PART_MAX || !ascii_domain_ok(dom, d_len))
            return FG_EINVAL;
    } else {
        char tmp[FG_IM_JID_PART_MAX + 2];
        memcpy(tmp, dom, dom_len);
        tmp[dom_len] = '\0';
        if (fg_domain_normalize(tmp, alabel, sizeof alabel, NULL) != 0)
            return FG_EINVAL;
        dsrc = alabel;
        d_len = strlen(alabel);
        copy = true;
    }

    if (!copy) {
        j->s = s;
        j->len = len;
    } else {
        size_t n = local_len + (at ? 1 : 0) + d_len + (slash ? 1 + res_len : 0);
        char *o = fg_arena_alloc_bytes(arena, n + 1);
        size_t k = 0;
        for (size_t i = 0; i < local_len; i++) {
            unsigned char c = (unsigned char)s[i];
            o[k++] = (char)(is_upper(c) ? c + 32 : c);
        }
        if (at)
            o[k++] = '@';
        for (size_t i = 0; i < d_len; i++) {
            unsigned char c = (unsigned char)dsrc[i];
            o[k++] = (char)(is_upper(c) ? c + 32 : c);
        }
        if (slash) {
            o[k++] = '/';
            memcpy(o + k, slash + 1, res_len);
            k += res_len;
        }
        o[k] = '\0';
        j->s = o;
        j->len = k;
    }
    j->local_len = local_len;
    j->domain = j->s + (at ? local_len + 1 : 0);
    j->domain_len = d_len;
    j->bare_len = (size_t)(j->domain - j->s) + d_len;
    j->resource = slash ? j->s + j->bare_len + 1 : NULL;
    j->resource_len = res_len;
    return 0;
}
