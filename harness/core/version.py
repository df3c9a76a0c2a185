"""The harness's version, recorded in every results document and in the cache keys."""

__version__ = "0.1.0"
