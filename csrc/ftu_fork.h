/*
 * Internal to the core (not part of the ABI): keeping the core's objects usable in the
 * child of a fork().
 *
 * fork() copies only the calling thread. A lock another thread held at that moment stays
 * held in the child for ever, and a structure that thread was changing under the lock
 * stays half changed. So every live queue and gatherer is on one list, and handlers
 * installed with pthread_atfork take all their locks just before fork() (waiting the few
 * instructions each holder needs to let go: the locks are never held across a wait or a
 * call out of the core), and release them after it, in the parent and in the child. In
 * the child, the object's count of waiting threads is also set back to zero: the threads
 * that were waiting are not there, and the calling thread is inside fork(), in no wait.
 */
#ifndef FTU_FORK_H
#define FTU_FORK_H

struct ftu_fork_node;

struct ftu_fork_ops {
    void (*lock)(struct ftu_fork_node *node);         /* before fork(): take every lock */
    void (*unlock_parent)(struct ftu_fork_node *node); /* after, in the parent */
    void (*unlock_child)(struct ftu_fork_node *node);  /* after, in the child */
};

/* Embedded in each object; the handlers find the object from it. */
struct ftu_fork_node {
    struct ftu_fork_node *prev, *next;
    const struct ftu_fork_ops *ops;
};

/* Puts node on the list (until ftu_fork_forget); installs the handlers on first use. */
/* Installs the fork handlers (once; ftu_fork_track does it too). */
void ftu_fork_install(void);
void ftu_fork_track(struct ftu_fork_node *node, const struct ftu_fork_ops *ops);
/* Takes node off the list; before the object is freed. */
void ftu_fork_forget(struct ftu_fork_node *node);

/* The fallback waits (not Linux) keep mutexes of their own: ftu_wait.c. */
void ftu_wait_before_fork(void);
void ftu_wait_after_fork_parent(void);
void ftu_wait_after_fork_child(void);

#endif /* FTU_FORK_H */
