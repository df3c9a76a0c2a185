"""An attention module declaring a variant the attention kind does not define ("flash" is a kernel, not a mask)."""

import torch.nn.functional as F

from harness import register


@register(kind="attention", variant="flash", exact=True)
class UnknownVariant:
    def forward(self, q, k, v, causal, window, key_padding_mask):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
