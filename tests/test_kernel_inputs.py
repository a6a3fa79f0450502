"""The kernels' Python boundary: bad inputs raise, never crash the interpreter.

Each test runs its kernels in a subprocess, so that a segmentation fault fails the test
rather than killing pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter on this checkout's package."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout,
    )


def test_an_order_that_is_not_a_permutation_is_a_value_error():
    # Once a segmentation fault: the repeated index left samples unwritten and the
    # scatter read an uninitialised index buffer.
    result = run_python(
        """
        import numpy as np
        from leitmotiv._ext import mixture
        args = (np.ones(1), np.zeros((1, 2)), np.eye(2)[None].copy(),
                np.array([0, 1], dtype=np.intp), np.array([4], dtype=np.intp),
                np.zeros((4, 2)), np.array([0, 0, 0, 0], dtype=np.intp), 4, 1)
        try:
            mixture.draw_samples(*args)
        except ValueError as exc:
            print("ValueError:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ValueError: order must be a permutation" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS and /proc")
def test_a_failed_allocation_is_a_memory_error():
    # js_half_sums takes 64 samples x the components of a column block per thread:
    # 205 MB for one block of 400,000 one-component mixtures, above a limit of the
    # process's size + 100 MB (numpy's own arrays fit below it).
    result = run_python(
        """
        import os, resource
        import numpy as np
        from leitmotiv._ext import divergence
        C = 400_000
        theta = np.zeros((3, C))
        theta[0] = -1.0
        offsets = np.arange(C + 1, dtype=np.intp)
        X, own = np.zeros((64, 1)), np.zeros(64)
        with open(f"/proc/{os.getpid()}/statm") as fh:
            size = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (size + (100 << 20), hard))
        try:
            divergence.js_half_sums(X, own, 64, theta, offsets, 1, 64, 10**9)
            print("no error")
        except MemoryError as exc:
            print("MemoryError:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "MemoryError: cannot allocate the work space of js_half_sums" in result.stdout


def test_random_inputs_never_crash_a_kernel():
    fuzz = Path(__file__).with_name("kernel_fuzz.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(fuzz)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
