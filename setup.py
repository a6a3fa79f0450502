"""Declare the Cython extensions; all metadata lives in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = ["vbgmm", "mixture", "divergence"]

extensions = [
    Extension(
        f"leitmotiv._ext.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=["ext", np.get_include()],
        depends=["ext/fastmath.h", "ext/logsumexp.h", "ext/logsumexp.pxd", "ext/linalg.pxd", "ext/checks.pxi"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
    )
    for name in KERNELS
]

setup(ext_modules=cythonize(extensions, language_level=3, include_path=["ext"]))
