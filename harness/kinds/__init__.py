"""Each kind's contract: variants, reference, inputs, shape battery, formulas and tolerance."""

from harness.kinds.activation import ActivationKind
from harness.kinds.attention import AttentionKind
from harness.kinds.base import Case, Kind, TolerancePolicy
from harness.kinds.norm import NormKind
from harness.kinds.quantization import QuantizationKind

KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (AttentionKind(), NormKind(), QuantizationKind(), ActivationKind())
}

__all__ = ["KINDS", "Case", "Kind", "TolerancePolicy"]
