"""RMSNorm whose forward calls itself without end."""

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class RecursesForever:
    def forward(self, x, weight, bias, eps):
        return self.forward(x, weight, bias, eps)
