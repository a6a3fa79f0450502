"""Compiled Cython kernels built from ext/ (see setup.py)."""
