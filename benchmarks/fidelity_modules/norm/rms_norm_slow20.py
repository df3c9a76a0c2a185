"""The reference formula followed by a busy-wait of 20% of its own duration: a calibrated slowdown (A/B)."""

import time

from harness import register
from harness.kinds import KINDS

SLOWDOWN = 0.20


@register(kind="norm", variant="rms_norm", exact=True)
class RmsNormSlow20:
    def forward(self, x, weight, bias, eps):
        start = time.perf_counter()
        out = KINDS["norm"].reference("rms_norm", {"x": x, "weight": weight, "bias": bias, "eps": eps})
        spent = time.perf_counter() - start
        while time.perf_counter() - start < spent * (1 + SLOWDOWN):
            pass
        return out
