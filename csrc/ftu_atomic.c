/*
 * int64 and word atomics of the C core: the flat ABI's functions (see ftu.h for the
 * contract), over the inline definitions of ftu_atomic_impl.h, which the native
 * extension calls in place.
 */
#include "ftu_atomic_impl.h"

/* ---- int64 cells ----------------------------------------------------------------- */

int64_t ftu_i64_load(const int64_t *cell) { return ftu_i64_load_inline(cell); }
void ftu_i64_store(int64_t *cell, int64_t value) { ftu_i64_store_inline(cell, value); }
int64_t ftu_i64_exchange(int64_t *cell, int64_t value) { return ftu_i64_exchange_inline(cell, value); }
int64_t ftu_i64_compare_exchange(int64_t *cell, int64_t expected, int64_t desired) {
    return ftu_i64_compare_exchange_inline(cell, expected, desired);
}

/* The ABI function of each inline operation that takes (cell, operand). */
#define FTU_I64_ABI(result, name) \
    result ftu_i64_##name(int64_t *cell, int64_t operand) { return ftu_i64_##name##_inline(cell, operand); }
#define FTU_WORD_ABI(name) \
    intptr_t ftu_word_##name(intptr_t *cell, intptr_t operand) { return ftu_word_##name##_inline(cell, operand); }

FTU_I64_ABI(int64_t, fetch_add)
FTU_I64_ABI(int64_t, fetch_sub)
FTU_I64_ABI(int64_t, fetch_and)
FTU_I64_ABI(int64_t, fetch_or)
FTU_I64_ABI(int64_t, fetch_xor)
FTU_I64_ABI(ftu_i64_result, add)
FTU_I64_ABI(ftu_i64_result, sub)
FTU_I64_ABI(ftu_i64_result, mul)
FTU_I64_ABI(ftu_i64_result, floordiv)
FTU_I64_ABI(ftu_i64_result, mod)
FTU_I64_ABI(ftu_i64_result, pow)
FTU_I64_ABI(ftu_i64_result, lshift)
FTU_I64_ABI(ftu_i64_result, rshift)
FTU_I64_ABI(ftu_i64_result, and)
FTU_I64_ABI(ftu_i64_result, or)
FTU_I64_ABI(ftu_i64_result, xor)

/* ---- word cells ------------------------------------------------------------------ */

intptr_t ftu_word_load(const intptr_t *cell) { return ftu_word_load_inline(cell); }
void ftu_word_store(intptr_t *cell, intptr_t value) { ftu_word_store_inline(cell, value); }
intptr_t ftu_word_exchange(intptr_t *cell, intptr_t value) { return ftu_word_exchange_inline(cell, value); }
intptr_t ftu_word_compare_exchange(intptr_t *cell, intptr_t expected, intptr_t desired) {
    return ftu_word_compare_exchange_inline(cell, expected, desired);
}

FTU_WORD_ABI(fetch_add)
FTU_WORD_ABI(fetch_sub)
FTU_WORD_ABI(fetch_and)
FTU_WORD_ABI(fetch_or)
FTU_WORD_ABI(fetch_xor)
