"""An attention module built on a kernel package that is not installed where modules are judged."""

import flash_attn_interface_v9  # not a dependency of the harness: no judge has it

from harness import register


@register(kind="attention", variant="causal", exact=True)
class ImportsMissingPackage:
    def forward(self, q, k, v, causal, window, key_padding_mask):
        return flash_attn_interface_v9.flash_attn_func(q, k, v, causal=True)
