"""RMSNorm that lifts the recursion limit and recurses through C (repr calling __repr__) until the C stack runs out."""

import sys

from harness import register


class Deeper:
    def __repr__(self):
        return repr(Deeper())


@register(kind="norm", variant="rms_norm", exact=True)
class OverflowsTheCStack:
    def forward(self, x, weight, bias, eps):
        sys.setrecursionlimit(100_000_000)
        return repr(Deeper())
