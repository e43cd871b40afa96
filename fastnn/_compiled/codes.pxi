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

cdef double LEAKY_SLOPE = 0.01


def _check_codes():
    ours = {"LINEAR": LINEAR, "SIGMOID": SIGMOID, "RELU": RELU, "TANH": TANH, "LEAKY_RELU": LEAKY_RELU,
            "SOFTMAX": SOFTMAX, "EXP": EXP, "LEAKY_SLOPE": LEAKY_SLOPE,
            "BINARY_CROSSENTROPY": BINARY_CROSSENTROPY, "CATEGORICAL_CROSSENTROPY": CATEGORICAL_CROSSENTROPY,
            "SPARSE_CATEGORICAL_CROSSENTROPY": SPARSE_CATEGORICAL_CROSSENTROPY, "MSE": MSE, "POISSON": POISSON,
            "SGD": SGD, "MOMENTUM": MOMENTUM, "ADAM": ADAM, "NESTEROV": NESTEROV}
    theirs = {name: getattr(_contract, name, None) for name in ours}
    # every code of the contract's tables must be one of ours
    known = (set(_contract.ACTIVATIONS.values()) == {LINEAR, SIGMOID, RELU, TANH, LEAKY_RELU, SOFTMAX, EXP}
             and set(_contract.LOSSES) == {BINARY_CROSSENTROPY, CATEGORICAL_CROSSENTROPY,
                                           SPARSE_CATEGORICAL_CROSSENTROPY, MSE, POISSON}
             and set(_contract.OPTIMIZERS.values()) == {SGD, MOMENTUM, ADAM, NESTEROV})
    if ours != theirs or not known:
        raise ImportError(f"fastnn._kernels was built with the codes {ours}, but fastnn._contract has {theirs}: "
                          "rebuild the extension")


_check_codes()


cdef inline bint _is_activation(long long activation) noexcept nogil:
    return activation == LINEAR or activation == SIGMOID or activation == RELU or \
        activation == TANH or activation == LEAKY_RELU or activation == SOFTMAX or activation == EXP
