/*
 * The machine probe: it returns a plausible figure, within its time budget, and refuses
 * arguments it cannot use.
 */
#include "check.h"
#include "ftu.h"

static void test_measures(void) {
    int64_t start = ftu_monotonic_ns();
    int64_t ns = ftu_probe_line_transfer_ns(20000, 2000000000);
    int64_t took = ftu_monotonic_ns() - start;
    /* more than nothing (on a loaded machine, where the two threads wait for CPUs, it
     * can reach milliseconds) */
    CHECK(ns > 0, "one-way transfer %lld ns", (long long)ns);
    CHECK(took < 3000000000LL, "the probe took %lld ns, budget 2 s", (long long)took);
}

static void test_budget(void) {
    /* more hops than 50 ms allows: the probe stops at its budget and reports what it
     * timed (-1 if the other thread did not even start in time, as on a loaded machine) */
    int64_t start = ftu_monotonic_ns();
    int64_t ns = ftu_probe_line_transfer_ns(INT64_MAX / 2, 50000000);
    int64_t took = ftu_monotonic_ns() - start;
    CHECK(ns > 0 || ns == -1, "a stopped probe reports what it timed: %lld", (long long)ns);
    CHECK(took < 1000000000LL, "the probe took %lld ns, budget 50 ms", (long long)took);
}

static void test_bad_arguments(void) {
    CHECK(ftu_probe_line_transfer_ns(3, 1000000000) == -1, "fewer than 4 hops time nothing");
    CHECK(ftu_probe_line_transfer_ns(1000, 0) == -1, "no budget");
    CHECK(ftu_probe_line_transfer_ns(-5, 1000000000) == -1, "negative hops");
}

int main(void) {
    test_measures();
    test_budget();
    test_bad_arguments();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
