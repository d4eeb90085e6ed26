/*
 * test_status.c - every status code has a distinct name and description.
 */
#include "test_util.h"

#include <string.h>

static const nncl_status ALL[] = {
#define X_(name, value, text) name,
    NNCL_STATUS_MAP(X_)
#undef X_
};
#define N_ALL (sizeof ALL / sizeof ALL[0])

static void test_names_and_strings_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ALL; i++) {
        assert_non_null(nncl_status_string(ALL[i]));
        assert_true(strncmp(nncl_status_name(ALL[i]), "NNCL_", 5) == 0);
        assert_string_not_equal(nncl_status_string(ALL[i]), "unknown status");
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(nncl_status_name(ALL[i]), nncl_status_name(ALL[j]));
            assert_string_not_equal(nncl_status_string(ALL[i]), nncl_status_string(ALL[j]));
        }
    }
    assert_int_equal(NNCL_OK, 0);
    assert_string_equal(nncl_status_name(NNCL_ERR_SHAPE), "NNCL_ERR_SHAPE");
}

static void test_unknown_value(void **state)
{
    (void)state;
    assert_string_equal(nncl_status_string((nncl_status)9999), "unknown status");
    assert_string_equal(nncl_status_name((nncl_status)-3), "NNCL_ERR_UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_strings_are_distinct),
        cmocka_unit_test(test_unknown_value),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
