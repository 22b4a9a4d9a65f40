/*
 * inbox.c — the job inbox of inbox.h.
 *
 * The holder record is what turns "with mu held" into a check: set after every acquisition of
 * mu (inbox_lock, and the return from a condition wait), cleared before every release. Only the
 * thread holding mu writes it, so a thread that holds mu reads it safely; in unchecked builds it
 * is never written and costs nothing.
 */
#include "pool/inbox.h"

#include "util/err.h"
#include "util/invariant.h"

int inbox_init(pool_inbox *ib, const char *what)
{
    ib->head = ib->tail = NULL;
    ib->pending = 0;
    ib->stop = 0;
    ib->held = false;
    if (pthread_mutex_init(&ib->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&ib->idle, NULL) != 0) {
        pthread_mutex_destroy(&ib->mu);
        goto fail;
    }
    return 0;
fail:
    return kvs_seterr(KVS_ENOMEM, "pool: cannot initialize the %s's lock", what);
}

void inbox_destroy(pool_inbox *ib)
{
    KVS_ASSERT(!ib->head && !ib->held);
    pthread_cond_destroy(&ib->idle);
    pthread_mutex_destroy(&ib->mu);
}

/* Checked builds: record that mu was just taken (held) or is about to be let go. */
static void note_holder(pool_inbox *ib, bool held)
{
#if KVS_INVARIANTS_CHECKED
    ib->held = held;
    ib->holder = pthread_self();
#else
    (void)ib, (void)held;
#endif
}

void inbox_lock(pool_inbox *ib)
{
    pthread_mutex_lock(&ib->mu);
    note_holder(ib, true);
}

void inbox_unlock(pool_inbox *ib)
{
    KVS_ASSERT(inbox_held(ib));
    note_holder(ib, false);
    pthread_mutex_unlock(&ib->mu);
}

void inbox_wait(pool_inbox *ib, pthread_cond_t *cv)
{
    KVS_ASSERT(inbox_held(ib));
    note_holder(ib, false);
    pthread_cond_wait(cv, &ib->mu);
    note_holder(ib, true);
}

bool inbox_held(const pool_inbox *ib)
{
    return ib->held && pthread_equal(ib->holder, pthread_self());
}

int inbox_open_locked(const pool_inbox *ib)
{
    KVS_ASSERT(inbox_held(ib));
    return ib->stop ? kvs_seterr(KVS_ECLOSED, "pool: spawn on a pool that is being freed") : 0;
}

void inbox_push_locked(pool_inbox *ib, pool_job *j)
{
    KVS_ASSERT(inbox_held(ib) && !ib->stop);
    j->next = NULL;
    if (ib->tail)
        ib->tail->next = j;
    else
        ib->head = j;
    ib->tail = j;
    ib->pending++;
}

pool_job *inbox_take_locked(pool_inbox *ib)
{
    pool_job *j = ib->head;

    KVS_ASSERT(inbox_held(ib));
    if (j && !(ib->head = j->next))
        ib->tail = NULL;
    return j;
}

void inbox_done_locked(pool_inbox *ib)
{
    KVS_ASSERT(inbox_held(ib) && ib->pending > 0);
    if (--ib->pending == 0)
        pthread_cond_broadcast(&ib->idle);
}

void inbox_close_locked(pool_inbox *ib)
{
    KVS_ASSERT(inbox_held(ib));
    while (ib->pending > 0)
        inbox_wait(ib, &ib->idle);
    ib->stop = 1;
}
