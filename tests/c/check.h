/*
 * The C tests' one assertion: CHECK(condition, printf-style message) counts a pass or
 * reports a failure with its place, and lets the test go on. Each test program prints
 * "N passed, N failed" from the two counters at the end (scripts/run_tests.sh reads it).
 */
#ifndef FTU_TEST_CHECK_H
#define FTU_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (cond) {                                              \
            passed++;                                            \
        } else {                                                 \
            failed++;                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
        }                                                        \
    } while (0)

#endif /* FTU_TEST_CHECK_H */
