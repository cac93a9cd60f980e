/* The list of live queues and gatherers, and the fork handlers (see ftu_fork.h). */
#include "ftu_fork.h"

#include "ftu_epoch.h"

#include <pthread.h>
#include <stddef.h>

static pthread_mutex_t tracked_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct ftu_fork_node tracked = {&tracked, &tracked, NULL}; /* the list's head */
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

/* Lock order: tracked_mutex, then the objects' locks (each object's in its own order).
 * Nothing takes tracked_mutex while holding an object's lock. */
static void before_fork(void) {
    pthread_mutex_lock(&tracked_mutex);
    for (struct ftu_fork_node *n = tracked.next; n != &tracked; n = n->next) n->ops->lock(n);
    ftu_wait_before_fork();
}

static void after_fork_parent(void) {
    ftu_wait_after_fork_parent();
    for (struct ftu_fork_node *n = tracked.next; n != &tracked; n = n->next) n->ops->unlock_parent(n);
    pthread_mutex_unlock(&tracked_mutex);
}

static void after_fork_child(void) {
    ftu_wait_after_fork_child();
    ftu_epoch_after_fork_child();
    for (struct ftu_fork_node *n = tracked.next; n != &tracked; n = n->next) n->ops->unlock_child(n);
    pthread_mutex_unlock(&tracked_mutex); /* taken by this very thread before the fork */
}

static void install_handlers(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

void ftu_fork_install(void) { pthread_once(&handlers_once, install_handlers); }

void ftu_fork_track(struct ftu_fork_node *node, const struct ftu_fork_ops *ops) {
    ftu_fork_install();
    node->ops = ops;
    pthread_mutex_lock(&tracked_mutex);
    node->prev = &tracked;
    node->next = tracked.next;
    tracked.next->prev = node;
    tracked.next = node;
    pthread_mutex_unlock(&tracked_mutex);
}

void ftu_fork_forget(struct ftu_fork_node *node) {
    if (node->ops == NULL) return; /* never tracked */
    pthread_mutex_lock(&tracked_mutex);
    node->prev->next = node->next;
    node->next->prev = node->prev;
    pthread_mutex_unlock(&tracked_mutex);
    node->ops = NULL;
}
