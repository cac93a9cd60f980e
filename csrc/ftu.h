/*
 * ft_utils core: the flat C ABI.
 *
 * This is the one public header of the C core. It does not include Python.h: the core
 * deals in 64-bit integers and pointer-sized words only, so it builds for any
 * interpreter (the CPython extension ft_utils._native and the cffi module ft_utils._cffi
 * are both built from it) and is unit-tested in plain C with pthreads.
 *
 * Everything between FTU_CDEF_BEGIN and FTU_CDEF_END is read verbatim by cffi_build.py
 * as the cffi cdef, so that block holds plain declarations and integer #defines only
 * (no other preprocessor lines, no inline bodies).
 *
 * Memory order: every operation is sequentially consistent.
 *
 * Cells: a cell is an ordinary, naturally aligned int64_t (or intptr_t) owned by the
 * caller. Once a cell is shared between threads, every access to it must go through
 * these functions.
 */
#ifndef FTU_H
#define FTU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FTU_CDEF_BEGIN */

/* Status codes of the checked operations. */
#define FTU_OK 0
#define FTU_OVERFLOW 1          /* the result does not fit in int64; cell unchanged */
#define FTU_ZERO_DIVISION 2     /* division or modulo by zero; cell unchanged */
#define FTU_NEGATIVE_SHIFT 3    /* shift by a negative count; cell unchanged */
#define FTU_NEGATIVE_EXPONENT 4 /* power with a negative exponent; cell unchanged */

/* Result of a checked read-modify-write: status is FTU_OK and value is the new value of
 * the cell, or status is an error code and value is the value the operation saw. */
typedef struct ftu_i64_result {
    int64_t value;
    int status;
} ftu_i64_result;

/* ---- int64 cells ---------------------------------------------------------------- */

int64_t ftu_i64_load(const int64_t *cell);
void ftu_i64_store(int64_t *cell, int64_t value);
/* Stores value, returns the previous value. */
int64_t ftu_i64_exchange(int64_t *cell, int64_t value);
/* Strong compare-and-swap: if the cell holds expected, stores desired. Returns the value
 * the cell held before; the swap happened if and only if that equals expected. */
int64_t ftu_i64_compare_exchange(int64_t *cell, int64_t expected, int64_t desired);

/* Wrapping (two's complement) read-modify-write; each returns the previous value. */
int64_t ftu_i64_fetch_add(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_sub(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_and(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_or(int64_t *cell, int64_t operand);
int64_t ftu_i64_fetch_xor(int64_t *cell, int64_t operand);

/* Checked read-modify-write with Python integer semantics: the new value is computed
 * exactly; if it does not fit in int64 (or the operation is undefined) the cell is left
 * unchanged and the status says why. Floor division and modulo round toward negative
 * infinity as Python's // and % do. */
ftu_i64_result ftu_i64_add(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_sub(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_mul(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_floordiv(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_mod(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_pow(int64_t *cell, int64_t exponent);
ftu_i64_result ftu_i64_lshift(int64_t *cell, int64_t count);
ftu_i64_result ftu_i64_rshift(int64_t *cell, int64_t count);
ftu_i64_result ftu_i64_and(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_or(int64_t *cell, int64_t operand);
ftu_i64_result ftu_i64_xor(int64_t *cell, int64_t operand);

/* ---- pointer-sized word cells ------------------------------------------------------ */

intptr_t ftu_word_load(const intptr_t *cell);
void ftu_word_store(intptr_t *cell, intptr_t value);
intptr_t ftu_word_exchange(intptr_t *cell, intptr_t value);
/* Same contract as ftu_i64_compare_exchange. */
intptr_t ftu_word_compare_exchange(intptr_t *cell, intptr_t expected, intptr_t desired);
intptr_t ftu_word_fetch_add(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_sub(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_and(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_or(intptr_t *cell, intptr_t operand);
intptr_t ftu_word_fetch_xor(intptr_t *cell, intptr_t operand);

/* FTU_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* FTU_H */
