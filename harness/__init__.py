"""A harness that judges contributed attention, norm, quantization and activation modules.

Contributors use `register` and `ErrorBound`; everything else is the harness's own machinery.
"""

from harness.core.contract import ErrorBound, ModuleSpec
from harness.core.version import __version__
from harness.registry.loader import register

__all__ = ["ErrorBound", "ModuleSpec", "__version__", "register"]
