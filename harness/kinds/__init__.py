"""Each kind's contract: variants, reference, inputs, shape battery, formulas and tolerance."""

from harness.core.tolerance import TolerancePolicy
from harness.kinds.activation import ActivationKind
from harness.kinds.attention import AttentionKind
from harness.kinds.base import CallStyle, Case, Kind
from harness.kinds.norm import NormKind
from harness.kinds.quantization import QuantizationKind

KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (AttentionKind(), NormKind(), QuantizationKind(), ActivationKind())
}

__all__ = ["KINDS", "CallStyle", "Case", "Kind", "TolerancePolicy"]
