/* fastnn's thread pool: the workers that share one training step (pooled.pxi).
 *
 * A pool is started for one train_epochs call and stopped at its end. The caller hands it jobs,
 * one at a time: a function and a count of tasks. Every thread, the caller included, takes the
 * next task number from one atomic counter until none is left, so a core that the host slows
 * down takes fewer tasks and holds the others up by one task at most. fastnn_pool_run returns
 * when every task of the job is done.
 *
 * The counter holds the job's generation in its high 32 bits and the next task in its low 32:
 * a helper that wakes late, after the job it saw has ended, fails to take a task from it (the
 * generation no longer matches) instead of running a task of the next job with the old
 * function. A task's function and context are read after the task is taken, and the caller
 * does not replace them before every task of the job is done, so a helper always runs the job it
 * took the task from.
 *
 * Idle helpers spin for a while (the next job of a step comes within microseconds), then sleep
 * on a condition variable. Helpers block every signal: Python's handlers run in the main thread,
 * which stays the caller.
 *
 * Without POSIX threads (not Linux, macOS or another Unix) a pool has no helpers and the caller
 * runs every task itself.
 */
#ifndef FASTNN_POOL_H
#define FASTNN_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__unix__) || defined(__APPLE__)
#define FASTNN_POOL_THREADS 1
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#if defined(__linux__)
#define FASTNN_POOL_PIN 1
#endif
#else
#define FASTNN_POOL_THREADS 0
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTNN_PAUSE() _mm_pause()
#else
#define FASTNN_PAUSE() ((void)0)
#endif

/* Spins of an idle helper before it sleeps, and of the caller waiting for the last tasks before it
 * yields its core. */
#define FASTNN_POOL_SPINS 1000000
#define FASTNN_POOL_MAX 64

typedef void (*fastnn_task_fn)(void* ctx, ptrdiff_t task, int worker);

typedef struct fastnn_pool fastnn_pool;

typedef struct fastnn_helper {  /* what a helper thread is started with */
    fastnn_pool* pool;
    int worker;
} fastnn_helper;

struct fastnn_pool {
    int helpers;
    uint64_t next;            /* generation << 32 | next task */
    uint32_t generation;
    ptrdiff_t n_tasks;
    ptrdiff_t done;           /* tasks of the current job finished */
    fastnn_task_fn fn;
    void* ctx;
    int quit;
#if FASTNN_POOL_THREADS
    pthread_t threads[FASTNN_POOL_MAX];
    fastnn_helper started[FASTNN_POOL_MAX];
    pthread_mutex_t mutex;
    pthread_cond_t wake;
#endif
#if defined(FASTNN_POOL_PIN)
    int pinned;               /* whether the caller was moved to a core of its own, */
    cpu_set_t caller_cores;   /* from these, which it gets back when the pool stops */
    int cores[FASTNN_POOL_MAX + 1];
#endif
};

/* Take and run tasks of job `generation` until it has none left, as worker `worker` (the caller 0,
 * the helpers 1 on). */
static void fastnn_pool_work(fastnn_pool* pool, uint32_t generation, int worker) {
    for (;;) {
        uint64_t current = __atomic_load_n(&pool->next, __ATOMIC_ACQUIRE);
        if ((uint32_t)(current >> 32) != generation)
            return;
        ptrdiff_t task = (ptrdiff_t)(current & 0xffffffffu);
        if (task >= __atomic_load_n(&pool->n_tasks, __ATOMIC_ACQUIRE))
            return;
        if (!__atomic_compare_exchange_n(&pool->next, &current, current + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;
        pool->fn(pool->ctx, task, worker);
        __atomic_fetch_add(&pool->done, 1, __ATOMIC_RELEASE);
    }
}

#if FASTNN_POOL_THREADS
static void* fastnn_pool_helper(void* arg) {
    fastnn_pool* pool = ((fastnn_helper*)arg)->pool;
    int worker = ((fastnn_helper*)arg)->worker;
#if defined(FASTNN_POOL_PIN)
    if (pool->pinned) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(pool->cores[worker], &one);
        pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
    }
#endif
    uint32_t seen = 0;
    for (;;) {
        uint32_t generation = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
        for (int spin = 0; generation == seen && spin < FASTNN_POOL_SPINS
                           && !__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE); spin++) {
            FASTNN_PAUSE();  /* the stop of the pool need not wait out the spin */
            generation = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
        }
        if (generation == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((generation = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE)) == seen
                   && !__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
            return NULL;
        seen = generation;
        fastnn_pool_work(pool, generation, worker);
    }
}
#endif

/* A pool of `threads` threads, the caller one of them (threads - 1 helpers), or NULL when out of
 * memory. Fewer helpers start when the system refuses more threads (pool->helpers says how many). */
static fastnn_pool* fastnn_pool_start(int threads) {
    fastnn_pool* pool = (fastnn_pool*)calloc(1, sizeof(fastnn_pool));
    if (pool == NULL)
        return NULL;
#if FASTNN_POOL_THREADS
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
#if defined(FASTNN_POOL_PIN)
    /* Each thread on a core of its own, when the caller may run on enough of them: left to the
     * scheduler, two threads of a pool often share one core while another is idle, and one that
     * spins waiting for the other then takes half its time. */
    if (pthread_getaffinity_np(pthread_self(), sizeof(pool->caller_cores), &pool->caller_cores) == 0
        && CPU_COUNT(&pool->caller_cores) >= threads && threads > 1) {
        int found = 0;
        for (int cpu = 0; cpu < CPU_SETSIZE && found < threads; cpu++)
            if (CPU_ISSET(cpu, &pool->caller_cores))
                pool->cores[found++] = cpu;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(pool->cores[0], &one);
        pool->pinned = pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
    }
#endif
    sigset_t all, before;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);  /* the helpers inherit the blocked set */
    int wanted = threads - 1 < FASTNN_POOL_MAX ? threads - 1 : FASTNN_POOL_MAX;
    for (; pool->helpers < wanted; pool->helpers++) {
        fastnn_helper* started = &pool->started[pool->helpers];
        started->pool = pool;
        started->worker = pool->helpers + 1;
        if (pthread_create(&pool->threads[pool->helpers], NULL, fastnn_pool_helper, started) != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &before, NULL);
#else
    (void)threads;
#endif
    return pool;
}

/* Run fn(ctx, task, worker) for task = 0 .. n_tasks - 1 across the pool (worker: which thread runs
 * it, 0 to helpers, for scratch space of its own); returns when all are done. */
static void fastnn_pool_run(fastnn_pool* pool, fastnn_task_fn fn, void* ctx, ptrdiff_t n_tasks) {
    uint32_t generation = pool->generation + 1;
    if (generation == 0)
        generation = 1;  /* 0 is the helpers' "seen nothing yet" */
    pool->fn = fn;
    pool->ctx = ctx;
    __atomic_store_n(&pool->n_tasks, n_tasks, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->done, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->next, (uint64_t)generation << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&pool->generation, generation, __ATOMIC_RELEASE);
#if FASTNN_POOL_THREADS
    if (pool->helpers > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
#endif
    fastnn_pool_work(pool, generation, 0);
    for (int spin = 0; __atomic_load_n(&pool->done, __ATOMIC_ACQUIRE) < n_tasks; spin++) {
        FASTNN_PAUSE();
#if FASTNN_POOL_THREADS
        if (spin >= FASTNN_POOL_SPINS)
            sched_yield();  /* a helper holding the last task lost its core: let it have ours */
#endif
    }
}

/* Stop the helpers and free the pool (NULL: nothing). */
static void fastnn_pool_stop(fastnn_pool* pool) {
    if (pool == NULL)
        return;
#if FASTNN_POOL_THREADS
    pthread_mutex_lock(&pool->mutex);
    __atomic_store_n(&pool->quit, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->helpers; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
#endif
#if defined(FASTNN_POOL_PIN)
    if (pool->pinned)
        pthread_setaffinity_np(pthread_self(), sizeof(pool->caller_cores), &pool->caller_cores);
#endif
    free(pool);
}

#endif
