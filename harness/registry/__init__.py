"""The module registry, in two halves with one job each.

- `sources.py` (judge side): which modules exist, from file and entry-point names; imports no module file.
- `loader.py` (contestant side): the `register` decorator, validation at registration, and `load`, which
  imports a module file and so runs untrusted code. Only the contestant process calls `load`.

(`harness/__init__.py` re-exports `register` for contributors, so the loader's code is importable everywhere;
what matters is that no judge-side code calls `load`, which tests/test_architecture.py checks from the imports.)
"""
