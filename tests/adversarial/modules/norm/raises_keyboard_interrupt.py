"""RMSNorm that raises KeyboardInterrupt from inside forward, as if someone pressed Ctrl-C, hoping to stop the run."""

from harness import register


@register(kind="norm", variant="rms_norm", exact=True)
class RaisesKeyboardInterrupt:
    def forward(self, x, weight, bias, eps):
        raise KeyboardInterrupt
