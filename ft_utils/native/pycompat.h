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

/* Per-object lock for a few instructions. On the free-threaded build it is the core's
 * spin lock (csrc/ftu_wait.h): it never detaches the thread state, so a thread holds it
 * only while running the few instructions between lock and unlock, and a stop of the
 * world (a collection, or os.fork) never finds it held. A PyMutex can be handed, at
 * release, to a thread that waited over a millisecond, detached: that thread may then be
 * stopped while re-attaching, holding it, and a fork at that moment left the lock held
 * for ever in the child (seen with 3 threads on one AtomicReference). Under the GIL, code
 * that does not call back into Python already runs atomically, so the lock compiles
 * away. Never hold it across anything that can run Python code (a decref, a comparison,
 * a hash) or detach (a PyMutex, an allocation of a type). */
#ifdef Py_GIL_DISABLED
#include "ftu_wait.h"
typedef ftu_spinlock ftu_pylock;
#define FTU_PYLOCK_ACQUIRE(lock) ftu_spinlock_lock(&(lock))
#define FTU_PYLOCK_RELEASE(lock) ftu_spinlock_unlock(&(lock))
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


/* A lock that may be held while Python code runs (a key's __eq__), so it must let other
 * threads run while it waits: PyMutex from 3.13 (it detaches the thread state when it
 * has to wait, on both builds), a PyThread lock with the GIL released before that. */
#if PY_VERSION_HEX >= 0x030D0000
typedef PyMutex ftu_mutex;
static inline int ftu_mutex_init(ftu_mutex *m) {
    memset(m, 0, sizeof(*m));
    return 0;
}
static inline void ftu_mutex_lock(ftu_mutex *m) { PyMutex_Lock(m); }
/* 1 if it took m without waiting. What PyMutex_Lock itself tries first; a mutex that is
 * free but still has parked waiters counts as taken (the caller then waits for it). */
static inline int ftu_mutex_trylock(ftu_mutex *m) {
    uint8_t expected = _Py_UNLOCKED;
    return _Py_atomic_compare_exchange_uint8(&m->_bits, &expected, _Py_LOCKED);
}
static inline void ftu_mutex_unlock(ftu_mutex *m) { PyMutex_Unlock(m); }
static inline void ftu_mutex_fini(ftu_mutex *m) { (void)m; }
#else
#include <pythread.h>
typedef PyThread_type_lock ftu_mutex;
static inline int ftu_mutex_init(ftu_mutex *m) {
    *m = PyThread_allocate_lock();
    if (*m == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}
static inline int ftu_mutex_trylock(ftu_mutex *m) { return PyThread_acquire_lock(*m, NOWAIT_LOCK); }
static inline void ftu_mutex_lock(ftu_mutex *m) {
    if (!PyThread_acquire_lock(*m, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(*m, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}
static inline void ftu_mutex_unlock(ftu_mutex *m) { PyThread_release_lock(*m); }
static inline void ftu_mutex_fini(ftu_mutex *m) {
    if (*m != NULL) PyThread_free_lock(*m);
    *m = NULL;
}
#endif

/* The value of obj if it is an exact int stored compact (3.12+: one digit, |v| < 2**30),
 * read in place: 1 with *out set, without a call into the interpreter; else 0, and the
 * caller converts obj the general way. */
static inline int ftu_compact_int(PyObject *obj, int64_t *out) {
#if PY_VERSION_HEX >= 0x030C0000
    if (PyLong_CheckExact(obj) && PyUnstable_Long_IsCompact((PyLongObject *)obj)) {
        *out = (int64_t)PyUnstable_Long_CompactValue((PyLongObject *)obj);
        return 1;
    }
#else
    (void)obj;
    (void)out;
#endif
    return 0;
}

/* Dict functions that return strong references arrived in 3.13. Under the GIL a
 * borrowed reference increfed at once is just as safe. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyDict_GetItemRef(PyObject *mp, PyObject *key, PyObject **result) {
    PyObject *item = PyDict_GetItemWithError(mp, key);
    if (item != NULL) {
        *result = Py_NewRef(item);
        return 1;
    }
    *result = NULL;
    return PyErr_Occurred() ? -1 : 0;
}

static inline int PyDict_SetDefaultRef(PyObject *mp, PyObject *key, PyObject *default_value,
                                       PyObject **result) {
    PyObject *item = PyDict_GetItemWithError(mp, key);
    if (item != NULL) {
        *result = Py_NewRef(item);
        return 1;
    }
    *result = NULL;
    if (PyErr_Occurred() || PyDict_SetItem(mp, key, default_value) < 0) return -1;
    *result = Py_NewRef(default_value);
    return 0;
}

static inline int PyDict_Pop(PyObject *mp, PyObject *key, PyObject **result) {
    PyObject *item = PyDict_GetItemWithError(mp, key);
    *result = NULL;
    if (item == NULL) return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(item);
    if (PyDict_DelItem(mp, key) < 0) {
        Py_DECREF(item);
        return -1;
    }
    *result = item;
    return 1;
}
#endif

/* A new reference for a queue: one that another thread will most likely release.
 *
 * The free-threaded build counts references in two fields: `ob_ref_local`, touched only
 * by the thread that owns the object (the one that made it), and `ob_ref_shared`, touched
 * atomically by every other thread. Py_INCREF in the producer counts the queue's
 * reference locally; the consumer's Py_DECREF of it then takes the shared count below
 * zero, which queues the object for its owner to merge the two counts (a mutex and a
 * trip through the owner's eval loop per item: biased reference counting's slow path).
 * Counting the reference in the shared field, as an incref from another thread would,
 * lets the consumer's decref bring the shared count back down instead. The sum of the
 * two fields, the object's reference count, is the same either way. */
static inline void ftu_incref_handoff(PyObject *op) {
#ifdef Py_GIL_DISABLED
    if (_Py_IsImmortal(op)) return;
    _Py_atomic_add_ssize(&op->ob_ref_shared, (1 << _Py_REF_SHARED_SHIFT));
#else
    Py_INCREF(op);
#endif
}

#endif /* FTU_PYCOMPAT_H */
