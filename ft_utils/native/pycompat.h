/*
 * The small compatibility layer that lets the same binding sources build for CPython
 * 3.11 (GIL) up to 3.13t (free-threaded), in the way pythoncapi-compat does it.
 */
#ifndef FTU_PYCOMPAT_H
#define FTU_PYCOMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

/* Per-object lock. On the free-threaded build it is a real PyMutex (one byte, parks
 * with the thread state detached when contended). Under the GIL, code that does not
 * call back into Python already runs atomically, so the lock compiles away. Never hold
 * it across anything that can run Python code (a decref, a comparison, a hash). */
#ifdef Py_GIL_DISABLED
typedef PyMutex ftu_pylock;
#define FTU_PYLOCK_ACQUIRE(lock) PyMutex_Lock(&(lock))
#define FTU_PYLOCK_RELEASE(lock) PyMutex_Unlock(&(lock))
#else
typedef char ftu_pylock;
#define FTU_PYLOCK_ACQUIRE(lock) ((void)(lock))
#define FTU_PYLOCK_RELEASE(lock) ((void)(lock))
#endif

#if PY_VERSION_HEX < 0x030A0000
#error "ft_utils needs CPython 3.10 or newer"
#endif

/* Py_NewRef arrived in 3.10; kept here for completeness of the shim. */
#ifndef Py_NewRef
#define Py_NewRef(obj) (Py_INCREF(obj), (PyObject *)(obj))
#endif

#endif /* FTU_PYCOMPAT_H */
