/* Allocation-failure injection for tests (see ftu_fail_allocations in ftu.h). */
#include "ftu.h"
#include "ftu_memory.h"

_Atomic int ftu_failing_allocations = 0;
static _Atomic int64_t allocations_left = 0; /* before the first one that fails */

void ftu_fail_allocations(int64_t after) {
    if (after < 0) {
        atomic_store(&ftu_failing_allocations, 0);
        return;
    }
    atomic_store(&allocations_left, after);
    atomic_store(&ftu_failing_allocations, 1);
}

int ftu_allocation_should_fail(void) {
    return atomic_fetch_sub(&allocations_left, 1) <= 0;
}
