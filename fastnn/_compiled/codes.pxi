# The contract's codes (fastnn._contract) as compile-time constants, so that the nogil loops switch
# on them without Python. _check_codes holds them to the contract at import: a build made from
# another contract does not load.

cdef enum:
    LINEAR = 0
    SIGMOID = 1
    RELU = 2
    TANH = 3
    LEAKY_RELU = 4
    SOFTMAX = 5
    EXP = 6

cdef enum:
    BINARY_CROSSENTROPY = 0
    CATEGORICAL_CROSSENTROPY = 1
    SPARSE_CATEGORICAL_CROSSENTROPY = 2
    MSE = 3
    POISSON = 4

cdef enum:
    SGD = 0
    MOMENTUM = 1
    ADAM = 2
    NESTEROV = 3
    ADAMW = 4
    RMSPROP = 5

cdef enum:
    CONSTANT = 0
    EXPONENTIAL = 1
    PIECEWISE = 2
    COSINE = 3

cdef enum:
    BINARY_ACCURACY = 0
    CATEGORICAL_ACCURACY = 1
    SPARSE_CATEGORICAL_ACCURACY = 2
    TOP_K_CATEGORICAL_ACCURACY = 3
    SPARSE_TOP_K_CATEGORICAL_ACCURACY = 4
    MEAN_ABSOLUTE_ERROR = 5
    MEAN_SQUARED_ERROR = 6

cdef double LEAKY_SLOPE = 0.01


def _check_codes():
    ours = {"LINEAR": LINEAR, "SIGMOID": SIGMOID, "RELU": RELU, "TANH": TANH, "LEAKY_RELU": LEAKY_RELU,
            "SOFTMAX": SOFTMAX, "EXP": EXP, "LEAKY_SLOPE": LEAKY_SLOPE,
            "BINARY_CROSSENTROPY": BINARY_CROSSENTROPY, "CATEGORICAL_CROSSENTROPY": CATEGORICAL_CROSSENTROPY,
            "SPARSE_CATEGORICAL_CROSSENTROPY": SPARSE_CATEGORICAL_CROSSENTROPY, "MSE": MSE, "POISSON": POISSON,
            "SGD": SGD, "MOMENTUM": MOMENTUM, "ADAM": ADAM, "NESTEROV": NESTEROV, "ADAMW": ADAMW, "RMSPROP": RMSPROP,
            "CONSTANT": CONSTANT, "EXPONENTIAL": EXPONENTIAL, "PIECEWISE": PIECEWISE, "COSINE": COSINE,
            "BINARY_ACCURACY": BINARY_ACCURACY, "CATEGORICAL_ACCURACY": CATEGORICAL_ACCURACY,
            "SPARSE_CATEGORICAL_ACCURACY": SPARSE_CATEGORICAL_ACCURACY,
            "TOP_K_CATEGORICAL_ACCURACY": TOP_K_CATEGORICAL_ACCURACY,
            "SPARSE_TOP_K_CATEGORICAL_ACCURACY": SPARSE_TOP_K_CATEGORICAL_ACCURACY,
            "MEAN_ABSOLUTE_ERROR": MEAN_ABSOLUTE_ERROR, "MEAN_SQUARED_ERROR": MEAN_SQUARED_ERROR}
    theirs = {name: getattr(_contract, name, None) for name in ours}
    # every code of the contract's tables must be one of ours
    known = (set(_contract.ACTIVATIONS.values()) == {LINEAR, SIGMOID, RELU, TANH, LEAKY_RELU, SOFTMAX, EXP}
             and set(_contract.LOSSES) == {BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY,
                                           SPARSE_CATEGORICAL_CROSSENTROPY, MSE, POISSON}
             and set(_contract.OPTIMIZERS.values()) == {SGD, MOMENTUM, ADAM, NESTEROV, ADAMW, RMSPROP}
             and set(_contract.SCHEDULES) == {CONSTANT, EXPONENTIAL, PIECEWISE, COSINE}
             and set(_contract.METRICS) == set(range(MEAN_SQUARED_ERROR + 1)))
    if ours != theirs or not known:
        raise ImportError(f"fastnn._kernels was built with the codes {ours}, but fastnn._contract has {theirs}: "
                          "rebuild the extension")


_check_codes()


cdef inline bint _is_activation(long long activation) noexcept nogil:
    return activation == LINEAR or activation == SIGMOID or activation == RELU or \
        activation == TANH or activation == LEAKY_RELU or activation == SOFTMAX or activation == EXP
