/*
 * Internal to the core (not part of the ABI): where the core gets its memory. Every
 * allocation goes through these, so that ftu_fail_allocations (ftu.h) can make any one
 * of them fail in tests, as exhausted memory would.
 */
#ifndef FTU_MEMORY_H
#define FTU_MEMORY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

extern _Atomic int ftu_failing_allocations; /* nonzero while ftu_fail_allocations is armed */
int ftu_allocation_should_fail(void);

static inline int ftu_allocation_fails(void) {
    return atomic_load_explicit(&ftu_failing_allocations, memory_order_relaxed) && ftu_allocation_should_fail();
}
static inline void *ftu_malloc(size_t size) { return ftu_allocation_fails() ? NULL : malloc(size); }
static inline void *ftu_calloc(size_t count, size_t size) {
    return ftu_allocation_fails() ? NULL : calloc(count, size);
}
static inline void *ftu_aligned_alloc(size_t alignment, size_t size) {
    return ftu_allocation_fails() ? NULL : aligned_alloc(alignment, size);
}

#endif
