/*
 * int64 and word atomics of the C core (see ftu.h for the contract).
 *
 * The cells are plain integers in the ABI (so that cffi and the CPython binding can
 * allocate them as ordinary memory); here they are accessed only through C11 atomics.
 */
#include "ftu.h"

#include <stdatomic.h>
#include <stdbool.h>

#define I64(cell) ((_Atomic int64_t *)(cell))
#define WORD(cell) ((_Atomic intptr_t *)(cell))

/* ---- exact int64 arithmetic ------------------------------------------------------ */

/* Each computes *out = a OP b with Python semantics and returns an FTU_ status. */
typedef int (*ftu_i64_binop)(int64_t a, int64_t b, int64_t *out);

static int op_add(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_add_overflow(a, b, out) ? FTU_OVERFLOW : FTU_OK;
#else
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return FTU_OVERFLOW;
    *out = a + b;
    return FTU_OK;
#endif
}

static int op_sub(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_sub_overflow(a, b, out) ? FTU_OVERFLOW : FTU_OK;
#else
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) return FTU_OVERFLOW;
    *out = a - b;
    return FTU_OK;
#endif
}

static int op_mul(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_mul_overflow(a, b, out) ? FTU_OVERFLOW : FTU_OK;
#else
    if (a != 0 && b != 0) {
        if (a > 0 ? (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a)
                  : (b > 0 ? a < INT64_MIN / b : a < INT64_MAX / b))
            return FTU_OVERFLOW;
    }
    *out = a * b;
    return FTU_OK;
#endif
}

static int op_floordiv(int64_t a, int64_t b, int64_t *out) {
    if (b == 0) return FTU_ZERO_DIVISION;
    if (a == INT64_MIN && b == -1) return FTU_OVERFLOW;
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    *out = q;
    return FTU_OK;
}

static int op_mod(int64_t a, int64_t b, int64_t *out) {
    if (b == 0) return FTU_ZERO_DIVISION;
    if (b == -1) { /* INT64_MIN % -1 traps on x86 */
        *out = 0;
        return FTU_OK;
    }
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    *out = r;
    return FTU_OK;
}

static int op_pow(int64_t base, int64_t exponent, int64_t *out) {
    if (exponent < 0) return FTU_NEGATIVE_EXPONENT;
    int64_t result = 1;
    /* Square-and-multiply; every intermediate is checked. The square is only computed
     * when a further bit of the exponent needs it, so 2**62 does not fail on 2**64. */
    while (exponent > 0) {
        if (exponent & 1) {
            if (op_mul(result, base, &result) != FTU_OK) return FTU_OVERFLOW;
        }
        exponent >>= 1;
        /* A further factor base**(2**k) is still needed: if base squared overflows,
         * so does the result (|base| >= 2 here, and result != 0 since base != 0). */
        if (exponent > 0 && op_mul(base, base, &base) != FTU_OK) return FTU_OVERFLOW;
    }
    *out = result;
    return FTU_OK;
}

static int op_lshift(int64_t a, int64_t count, int64_t *out) {
    if (count < 0) return FTU_NEGATIVE_SHIFT;
    if (a == 0) {
        *out = 0;
        return FTU_OK;
    }
    if (count >= 64) return FTU_OVERFLOW;
    /* a << count fits iff -2**(63-count) <= a <= 2**(63-count) - 1. */
    const int64_t max = INT64_MAX >> count;
    if (a > max || a < -max - 1) return FTU_OVERFLOW;
    *out = (int64_t)((uint64_t)a << count);
    return FTU_OK;
}

static int op_rshift(int64_t a, int64_t count, int64_t *out) {
    if (count < 0) return FTU_NEGATIVE_SHIFT;
    if (count >= 63) count = 63; /* arithmetic shift: 0 or -1, as Python gives */
    /* Right shift of a negative value is implementation-defined in C; do it portably as
     * floor division by 2**count. */
    *out = a >= 0 ? (a >> count) : ~((~a) >> count);
    return FTU_OK;
}

/* The CAS loop behind every checked operation: the cell changes only to an exact
 * result computed from the value it held at that moment. */
static ftu_i64_result apply_checked(int64_t *cell, int64_t operand, ftu_i64_binop op) {
    ftu_i64_result r;
    int64_t old = atomic_load_explicit(I64(cell), memory_order_relaxed);
    int64_t new_value;
    for (;;) {
        r.status = op(old, operand, &new_value);
        if (r.status != FTU_OK) {
            /* Make the failure linearizable: it is reported against a value the cell
             * really held (the relaxed load above may be stale). */
            int64_t seen = atomic_load(I64(cell));
            if (seen != old) {
                old = seen;
                continue;
            }
            r.value = old;
            return r;
        }
        if (atomic_compare_exchange_weak(I64(cell), &old, new_value)) {
            r.value = new_value;
            return r;
        }
    }
}

/* ---- int64 cells ----------------------------------------------------------------- */

int64_t ftu_i64_load(const int64_t *cell) { return atomic_load((_Atomic const int64_t *)cell); }
void ftu_i64_store(int64_t *cell, int64_t value) { atomic_store(I64(cell), value); }
int64_t ftu_i64_exchange(int64_t *cell, int64_t value) { return atomic_exchange(I64(cell), value); }

int64_t ftu_i64_compare_exchange(int64_t *cell, int64_t expected, int64_t desired) {
    atomic_compare_exchange_strong(I64(cell), &expected, desired);
    return expected; /* on failure C11 wrote the value seen into expected */
}

/* Wrapping arithmetic goes through unsigned to stay defined on overflow. */
int64_t ftu_i64_fetch_add(int64_t *cell, int64_t operand) {
    return (int64_t)atomic_fetch_add((_Atomic uint64_t *)cell, (uint64_t)operand);
}
int64_t ftu_i64_fetch_sub(int64_t *cell, int64_t operand) {
    return (int64_t)atomic_fetch_sub((_Atomic uint64_t *)cell, (uint64_t)operand);
}
int64_t ftu_i64_fetch_and(int64_t *cell, int64_t operand) { return atomic_fetch_and(I64(cell), operand); }
int64_t ftu_i64_fetch_or(int64_t *cell, int64_t operand) { return atomic_fetch_or(I64(cell), operand); }
int64_t ftu_i64_fetch_xor(int64_t *cell, int64_t operand) { return atomic_fetch_xor(I64(cell), operand); }

ftu_i64_result ftu_i64_add(int64_t *cell, int64_t operand) { return apply_checked(cell, operand, op_add); }
ftu_i64_result ftu_i64_sub(int64_t *cell, int64_t operand) { return apply_checked(cell, operand, op_sub); }
ftu_i64_result ftu_i64_mul(int64_t *cell, int64_t operand) { return apply_checked(cell, operand, op_mul); }
ftu_i64_result ftu_i64_floordiv(int64_t *cell, int64_t operand) { return apply_checked(cell, operand, op_floordiv); }
ftu_i64_result ftu_i64_mod(int64_t *cell, int64_t operand) { return apply_checked(cell, operand, op_mod); }
ftu_i64_result ftu_i64_pow(int64_t *cell, int64_t exponent) { return apply_checked(cell, exponent, op_pow); }
ftu_i64_result ftu_i64_lshift(int64_t *cell, int64_t count) { return apply_checked(cell, count, op_lshift); }
ftu_i64_result ftu_i64_rshift(int64_t *cell, int64_t count) { return apply_checked(cell, count, op_rshift); }

/* Bitwise results always fit: a single fetch-op, no CAS loop. */
static ftu_i64_result ok_result(int64_t value) {
    ftu_i64_result r = {value, FTU_OK};
    return r;
}
ftu_i64_result ftu_i64_and(int64_t *cell, int64_t operand) { return ok_result(ftu_i64_fetch_and(cell, operand) & operand); }
ftu_i64_result ftu_i64_or(int64_t *cell, int64_t operand) { return ok_result(ftu_i64_fetch_or(cell, operand) | operand); }
ftu_i64_result ftu_i64_xor(int64_t *cell, int64_t operand) { return ok_result(ftu_i64_fetch_xor(cell, operand) ^ operand); }

/* ---- word cells ------------------------------------------------------------------ */

intptr_t ftu_word_load(const intptr_t *cell) { return atomic_load((_Atomic const intptr_t *)cell); }
void ftu_word_store(intptr_t *cell, intptr_t value) { atomic_store(WORD(cell), value); }
intptr_t ftu_word_exchange(intptr_t *cell, intptr_t value) { return atomic_exchange(WORD(cell), value); }

intptr_t ftu_word_compare_exchange(intptr_t *cell, intptr_t expected, intptr_t desired) {
    atomic_compare_exchange_strong(WORD(cell), &expected, desired);
    return expected;
}

intptr_t ftu_word_fetch_add(intptr_t *cell, intptr_t operand) {
    return (intptr_t)atomic_fetch_add((_Atomic uintptr_t *)cell, (uintptr_t)operand);
}
intptr_t ftu_word_fetch_sub(intptr_t *cell, intptr_t operand) {
    return (intptr_t)atomic_fetch_sub((_Atomic uintptr_t *)cell, (uintptr_t)operand);
}
intptr_t ftu_word_fetch_and(intptr_t *cell, intptr_t operand) { return atomic_fetch_and(WORD(cell), operand); }
intptr_t ftu_word_fetch_or(intptr_t *cell, intptr_t operand) { return atomic_fetch_or(WORD(cell), operand); }
intptr_t ftu_word_fetch_xor(intptr_t *cell, intptr_t operand) { return atomic_fetch_xor(WORD(cell), operand); }
