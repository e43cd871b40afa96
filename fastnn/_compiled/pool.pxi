# fastnn's thread pool (pool.h): threads started for one kernel call, which take numbered tasks
# of a job in turn. Its users: bf16.pxi's shared products and pooled.pxi's training step and predict.

from libc.stddef cimport ptrdiff_t

cdef extern from "pool.h" nogil:
    ctypedef struct fastnn_pool:
        int helpers
    ctypedef void (*fastnn_task_fn)(void* ctx, ptrdiff_t task, int worker) noexcept nogil
    fastnn_pool* fastnn_pool_start(int threads)
    void fastnn_pool_run(fastnn_pool* pool, fastnn_task_fn fn, void* ctx, ptrdiff_t n_tasks)
    void fastnn_pool_stop(fastnn_pool* pool)

cdef enum:
    POOL_PIECES_PER_THREAD = 2  # a product is cut into this many pieces per thread: enough that a slow
                                # core takes fewer of them, few enough that each copies its operand
                                # into BLAS's layout once for much work
    POOL_MIN_PIECE = 64         # a dimension shorter than this is not cut
    POOL_UPDATE_RANGE = 16384   # parameters per task of the optimizer step
    POOL_PREDICT_CHUNKS = 8     # network_predict cuts a few rows into this many chunks
