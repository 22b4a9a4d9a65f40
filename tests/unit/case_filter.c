/*
 * case_filter.c — run one cmocka case, or some, by name.
 *
 * Linked into every cmocka program here. Before main, it hands $KVS_TEST_CASE (a name, or a
 * pattern with * and ?) to cmocka_set_test_filter, so that
 *
 *     KVS_TEST_CASE=test_need_hint build/bin/test_resp
 *     make check T=test_resp C=test_need_hint
 *
 * run only the cases it matches; unset or empty, every case runs. The programs' mains stay as
 * cmocka writes them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <cmocka.h>

__attribute__((constructor)) static void case_filter_from_env(void)
{
    const char *pattern = getenv("KVS_TEST_CASE");

    if (pattern && *pattern)
        cmocka_set_test_filter(pattern);
}
