"""A module registered under a kind the harness does not have ("nonlinearity" for "activation")."""

import torch

from harness import register


@register(kind="nonlinearity", variant="silu", exact=True)
class UnknownKind:
    def forward(self, x, gate, up):
        return torch.nn.functional.silu(x)
