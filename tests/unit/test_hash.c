/* test_hash.c - the open-addressing hash table (core/hash.h): insert, replace, lookup,
 * removal with backward shift checked against a plain array, iteration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/hash.h"

enum { N = 5000 };
static char keys[N][16];

static void t_basic(void **state)
{
    struct fg_hash h;
    int a = 1, b = 2;
    (void)state;
    fg_hash_init(&h);
    assert_null(fg_hash_get(&h, "x", 1));
    assert_null(fg_hash_remove(&h, "x", 1));
    fg_hash_put(&h, "alice@a.test", 12, &a);
    fg_hash_put(&h, "bob@a.test", 10, &b);
    assert_ptr_equal(fg_hash_get(&h, "alice@a.test", 12), &a);
    /* Keys are byte strings with a length: a prefix is another key. */
    assert_null(fg_hash_get(&h, "alice@a.test", 5));
    assert_ptr_equal(fg_hash_get(&h, "bob@a.test/res", 10), &b);
    fg_hash_put(&h, "bob@a.test", 10, &a);
    assert_int_equal(fg_hash_count(&h), 2);
    assert_ptr_equal(fg_hash_get(&h, "bob@a.test", 10), &a);
    assert_ptr_equal(fg_hash_remove(&h, "bob@a.test", 10), &a);
    assert_null(fg_hash_get(&h, "bob@a.test", 10));
    assert_int_equal(fg_hash_count(&h), 1);
    /* The empty key is a key. */
    fg_hash_put(&h, "", 0, &b);
    assert_ptr_equal(fg_hash_get(&h, "", 0), &b);
    fg_hash_clear(&h);
    assert_int_equal(fg_hash_count(&h), 0);
    assert_null(fg_hash_get(&h, "alice@a.test", 12));
}

static void t_many(void **state)
{
    struct fg_hash h;
    static bool present[N];
    (void)state;
    fg_hash_init(&h);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "u%d@x.test", i);
        fg_hash_put(&h, keys[i], strlen(keys[i]), keys[i]);
        present[i] = true;
    }
    assert_int_equal(fg_hash_count(&h), N);
    /* Remove in an order that exercises wrap-around runs. */
    for (int round = 0; round < 3; round++) {
        for (int i = round; i < N; i += 3 + round) {
            void *v = fg_hash_remove(&h, keys[i], strlen(keys[i]));
            assert_ptr_equal(v, present[i] ? keys[i] : NULL);
            present[i] = false;
        }
        for (int i = 0; i < N; i++)
            assert_ptr_equal(fg_hash_get(&h, keys[i], strlen(keys[i])),
                             present[i] ? keys[i] : NULL);
    }
    size_t count = 0, pos = 0;
    const char *k;
    void *v;
    while (fg_hash_next(&h, &pos, &k, &v)) {
        assert_ptr_equal(k, v);
        count++;
    }
    assert_int_equal(count, fg_hash_count(&h));
    for (int i = 0; i < N; i++)
        if (!present[i])
            fg_hash_put(&h, keys[i], strlen(keys[i]), keys[i]);
    assert_int_equal(fg_hash_count(&h), N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(fg_hash_get(&h, keys[i], strlen(keys[i])), keys[i]);
    fg_hash_clear(&h);
}

static void t_hash_stable(void **state)
{
    (void)state;
    assert_true(fg_hash_bytes("abc", 3) == fg_hash_bytes("abc", 3));
    assert_true(fg_hash_bytes("abc", 3) != fg_hash_bytes("abd", 3));
    assert_true(fg_hash_bytes("", 0) != fg_hash_bytes("\0", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_basic),
        cmocka_unit_test(t_many),
        cmocka_unit_test(t_hash_stable),
    };
    return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
