"""Build script: the pure-Python package always; the C++ kernels when torch is importable.

The kernels part is owned by csrc/ (see csrc/README.md once present).
"""

from setuptools import setup

setup()
