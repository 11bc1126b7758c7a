"""The native parts of rxradar: the ASAP segment scanner and keyed hashing (the rest is in pyproject.toml)."""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(ext_modules=[
    Extension("rxradar.ingest._asap_scan", ["src/rxradar/ingest/_asap_scan.c"], extra_compile_args=FLAGS),
    Extension("rxradar._keyed_hash", ["src/rxradar/_keyed_hash.c"], extra_compile_args=FLAGS),
])
