/*
 * int64 and word atomics of the C core: the flat ABI's functions (see ftu.h for the
 * contract), over the inline definitions of ftu_atomic_impl.h, which the native
 * extension calls in place.
 */
#include "ftu_atomic_impl.h"

/* The ABI function of each plain operation on cells of type T (see FTU_CELL_OPS). */
#define FTU_CELL_ABI(P, T)                                                                        \
    T ftu_##P##_load(const T *cell) { return ftu_##P##_load_inline(cell); }                       \
    void ftu_##P##_store(T *cell, T value) { ftu_##P##_store_inline(cell, value); }               \
    T ftu_##P##_exchange(T *cell, T value) { return ftu_##P##_exchange_inline(cell, value); }     \
    T ftu_##P##_compare_exchange(T *cell, T expected, T desired) {                                \
        return ftu_##P##_compare_exchange_inline(cell, expected, desired);                        \
    }                                                                                             \
    T ftu_##P##_fetch_add(T *cell, T operand) { return ftu_##P##_fetch_add_inline(cell, operand); } \
    T ftu_##P##_fetch_sub(T *cell, T operand) { return ftu_##P##_fetch_sub_inline(cell, operand); } \
    T ftu_##P##_fetch_and(T *cell, T operand) { return ftu_##P##_fetch_and_inline(cell, operand); } \
    T ftu_##P##_fetch_or(T *cell, T operand) { return ftu_##P##_fetch_or_inline(cell, operand); }   \
    T ftu_##P##_fetch_xor(T *cell, T operand) { return ftu_##P##_fetch_xor_inline(cell, operand); }
FTU_CELL_ABI(i64, int64_t)
FTU_CELL_ABI(word, intptr_t)

/* The checked int64 operations. */
#define FTU_CHECKED_ABI(name) \
    ftu_i64_result ftu_i64_##name(int64_t *cell, int64_t operand) { return ftu_i64_##name##_inline(cell, operand); }
FTU_CHECKED_ABI(add)
FTU_CHECKED_ABI(sub)
FTU_CHECKED_ABI(mul)
FTU_CHECKED_ABI(floordiv)
FTU_CHECKED_ABI(mod)
FTU_CHECKED_ABI(pow)
FTU_CHECKED_ABI(lshift)
FTU_CHECKED_ABI(rshift)
FTU_CHECKED_ABI(and)
FTU_CHECKED_ABI(or)
FTU_CHECKED_ABI(xor)
