/*
 * The int64 and word atomics of the core (contract: ftu.h) as inline definitions, for
 * callers compiled with the core: internal to the core and the native extension, not part
 * of the flat ABI.
 *
 * ftu_atomic.c defines the ABI's ftu_i64_* and ftu_word_* functions over these (the cffi
 * module and the C tests call those); the native extension calls the ftu_*_inline
 * functions here directly, so that a method such as AtomicInt64.incr compiles to its
 * atomic instructions in place, with no call across translation units. The cells are
 * plain integers in the ABI (so that cffi and the CPython binding can allocate them as
 * ordinary memory); here they are accessed only through C11 atomics.
 */
#ifndef FTU_ATOMIC_IMPL_H
#define FTU_ATOMIC_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "ftu.h"

/* For the few lines of each hot path (a checked add is a load, an add, a CAS): inlined
 * whatever the optimizer's budget, so that the operation passed to the CAS loop is
 * known where the loop is compiled. */
#if defined(__GNUC__) || defined(__clang__)
#define FTU_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FTU_ALWAYS_INLINE static inline
#endif

#define FTU_I64(cell) ((_Atomic int64_t *)(cell))

/* ---- exact int64 arithmetic ------------------------------------------------------ */

/* Each computes *out = a OP b with Python semantics and returns an FTU_ status. */
typedef int (*ftu_i64_binop)(int64_t a, int64_t b, int64_t *out);

#if defined(__GNUC__) || defined(__clang__)
FTU_ALWAYS_INLINE int ftu_op_add(int64_t a, int64_t b, int64_t *out) {
    return __builtin_add_overflow(a, b, out) ? FTU_OVERFLOW : FTU_OK;
}
FTU_ALWAYS_INLINE int ftu_op_sub(int64_t a, int64_t b, int64_t *out) {
    return __builtin_sub_overflow(a, b, out) ? FTU_OVERFLOW : FTU_OK;
}
FTU_ALWAYS_INLINE int ftu_op_mul(int64_t a, int64_t b, int64_t *out) {
    return __builtin_mul_overflow(a, b, out) ? FTU_OVERFLOW : FTU_OK;
}
#else
static inline int ftu_op_add(int64_t a, int64_t b, int64_t *out) {
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return FTU_OVERFLOW;
    *out = a + b;
    return FTU_OK;
}
static inline int ftu_op_sub(int64_t a, int64_t b, int64_t *out) {
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) return FTU_OVERFLOW;
    *out = a - b;
    return FTU_OK;
}
static inline int ftu_op_mul(int64_t a, int64_t b, int64_t *out) {
    if (a != 0 && b != 0) {
        if (a > 0 ? (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a)
                  : (b > 0 ? a < INT64_MIN / b : a < INT64_MAX / b))
            return FTU_OVERFLOW;
    }
    *out = a * b;
    return FTU_OK;
}
#endif

static inline int ftu_op_floordiv(int64_t a, int64_t b, int64_t *out) {
    if (b == 0) return FTU_ZERO_DIVISION;
    if (a == INT64_MIN && b == -1) return FTU_OVERFLOW;
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    *out = q;
    return FTU_OK;
}

static inline int ftu_op_mod(int64_t a, int64_t b, int64_t *out) {
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

static inline int ftu_op_pow(int64_t base, int64_t exponent, int64_t *out) {
    if (exponent < 0) return FTU_NEGATIVE_EXPONENT;
    int64_t result = 1;
    /* Square-and-multiply; every intermediate is checked. The square is only computed
     * when a further bit of the exponent needs it, so 2**62 does not fail on 2**64. */
    while (exponent > 0) {
        if (exponent & 1) {
            if (ftu_op_mul(result, base, &result) != FTU_OK) return FTU_OVERFLOW;
        }
        exponent >>= 1;
        /* A further factor base**(2**k) is still needed: if base squared overflows,
         * so does the result (|base| >= 2 here, and result != 0 since base != 0). */
        if (exponent > 0 && ftu_op_mul(base, base, &base) != FTU_OK) return FTU_OVERFLOW;
    }
    *out = result;
    return FTU_OK;
}

static inline int ftu_op_lshift(int64_t a, int64_t count, int64_t *out) {
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

static inline int ftu_op_rshift(int64_t a, int64_t count, int64_t *out) {
    if (count < 0) return FTU_NEGATIVE_SHIFT;
    if (count >= 63) count = 63; /* arithmetic shift: 0 or -1, as Python gives */
    /* Right shift of a negative value is implementation-defined in C; do it portably as
     * floor division by 2**count. */
    *out = a >= 0 ? (a >> count) : ~((~a) >> count);
    return FTU_OK;
}

/* The CAS loop behind every checked operation: the cell changes only to an exact
 * result computed from the value it held at that moment. */
FTU_ALWAYS_INLINE ftu_i64_result ftu_i64_apply_checked(int64_t *cell, int64_t operand, ftu_i64_binop op) {
    ftu_i64_result r;
    int64_t old = atomic_load_explicit(FTU_I64(cell), memory_order_relaxed);
    int64_t new_value;
    for (;;) {
        r.status = op(old, operand, &new_value);
        if (r.status != FTU_OK) {
            /* Make the failure linearizable: it is reported against a value the cell
             * really held (the relaxed load above may be stale). */
            int64_t seen = atomic_load(FTU_I64(cell));
            if (seen != old) {
                old = seen;
                continue;
            }
            r.value = old;
            return r;
        }
        if (atomic_compare_exchange_weak(FTU_I64(cell), &old, new_value)) {
            r.value = new_value;
            return r;
        }
    }
}

/* ---- int64 and word cells --------------------------------------------------------- */

/* The plain operations on cells of type T: ftu_P_load_inline, _store_, _exchange_,
 * _compare_exchange_ (returns the value the cell held; the swap happened iff that is
 * `expected`), _fetch_add_, _fetch_sub_, _fetch_and_, _fetch_or_ and _fetch_xor_inline
 * (each returns the previous value). Wrapping arithmetic goes through the unsigned type U
 * to stay defined on overflow. */
#define FTU_CELL_OPS(P, T, U)                                                                      \
    FTU_ALWAYS_INLINE T ftu_##P##_load_inline(const T *cell) {                                     \
        return atomic_load((_Atomic const T *)cell);                                               \
    }                                                                                              \
    FTU_ALWAYS_INLINE void ftu_##P##_store_inline(T *cell, T value) {                              \
        atomic_store((_Atomic T *)cell, value);                                                    \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_exchange_inline(T *cell, T value) {                             \
        return atomic_exchange((_Atomic T *)cell, value);                                          \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_compare_exchange_inline(T *cell, T expected, T desired) {        \
        atomic_compare_exchange_strong((_Atomic T *)cell, &expected, desired);                     \
        return expected; /* on failure C11 wrote the value seen into expected */                   \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_fetch_add_inline(T *cell, T operand) {                          \
        return (T)atomic_fetch_add((_Atomic U *)cell, (U)operand);                                 \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_fetch_sub_inline(T *cell, T operand) {                          \
        return (T)atomic_fetch_sub((_Atomic U *)cell, (U)operand);                                 \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_fetch_and_inline(T *cell, T operand) {                          \
        return atomic_fetch_and((_Atomic T *)cell, operand);                                       \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_fetch_or_inline(T *cell, T operand) {                           \
        return atomic_fetch_or((_Atomic T *)cell, operand);                                        \
    }                                                                                              \
    FTU_ALWAYS_INLINE T ftu_##P##_fetch_xor_inline(T *cell, T operand) {                          \
        return atomic_fetch_xor((_Atomic T *)cell, operand);                                       \
    }
FTU_CELL_OPS(i64, int64_t, uint64_t)
FTU_CELL_OPS(word, intptr_t, uintptr_t)
#undef FTU_CELL_OPS

/* ---- checked int64 operations ------------------------------------------------------ */

#define FTU_CHECKED(name, op)                                                                  \
    FTU_ALWAYS_INLINE ftu_i64_result ftu_i64_##name##_inline(int64_t *cell, int64_t operand) { \
        return ftu_i64_apply_checked(cell, operand, op);                                       \
    }
FTU_CHECKED(add, ftu_op_add)
FTU_CHECKED(sub, ftu_op_sub)
FTU_CHECKED(mul, ftu_op_mul)
FTU_CHECKED(floordiv, ftu_op_floordiv)
FTU_CHECKED(mod, ftu_op_mod)
FTU_CHECKED(pow, ftu_op_pow)
FTU_CHECKED(lshift, ftu_op_lshift)
FTU_CHECKED(rshift, ftu_op_rshift)
#undef FTU_CHECKED

/* Bitwise results always fit: a single fetch-op, no CAS loop. */
FTU_ALWAYS_INLINE ftu_i64_result ftu_i64_ok_result(int64_t value) {
    ftu_i64_result r = {value, FTU_OK};
    return r;
}
FTU_ALWAYS_INLINE ftu_i64_result ftu_i64_and_inline(int64_t *cell, int64_t operand) {
    return ftu_i64_ok_result(ftu_i64_fetch_and_inline(cell, operand) & operand);
}
FTU_ALWAYS_INLINE ftu_i64_result ftu_i64_or_inline(int64_t *cell, int64_t operand) {
    return ftu_i64_ok_result(ftu_i64_fetch_or_inline(cell, operand) | operand);
}
FTU_ALWAYS_INLINE ftu_i64_result ftu_i64_xor_inline(int64_t *cell, int64_t operand) {
    return ftu_i64_ok_result(ftu_i64_fetch_xor_inline(cell, operand) ^ operand);
}

#endif /* FTU_ATOMIC_IMPL_H */
