"""Benchmark suite options and fixtures. The helpers live in common.py, the peers in peers.py."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # common.py and peers.py sit beside the benchmarks


def pytest_sessionstart(session):
    """Start JAX's CPU runtime before any benchmark pins threads to one core: XLA sizes its thread
    pool from the CPUs available when it starts, and a pool made under pinning would hold JAX to
    one core in its two-thread rows too."""
    try:
        import jax
    except ImportError:
        return
    jax.devices()


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", help="a short pass: less data, fewer rounds")


@pytest.fixture(scope="session")
def quick(request) -> bool:
    return request.config.getoption("--quick")


@pytest.fixture(scope="session")
def rounds(quick) -> int:
    return 1 if quick else 5


