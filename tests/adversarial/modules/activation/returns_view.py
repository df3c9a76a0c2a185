"""A "SiLU" that hands back a view of its input (`x[...]`): a new tensor object on the input's own storage."""

from harness import register


@register(kind="activation", variant="silu", exact=True)
class ReturnsView:
    def forward(self, x, gate, up):
        return x[...]
