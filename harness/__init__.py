"""A harness that judges contributed attention, norm, quantization and activation modules.

Contributors use `register` and `ErrorBound`; everything else is the harness's own machinery.
"""

from harness.contract import ErrorBound, ModuleSpec
from harness.registry import register

__version__ = "0.1.0"

__all__ = ["ErrorBound", "ModuleSpec", "__version__", "register"]
