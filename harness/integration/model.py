"""A small pre-norm decoder-only transformer whose attention, norm and activation are pluggable slots."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from harness.integration.slots import Slots

# Standard deviation of the initial weights. Measured on MQAR (d_model 64, 2 layers, lr 2e-3): GPT-2's 0.02 delays
# the induction phase transition past a few hundred steps, 0.125 makes its timing depend strongly on the seed;
# at 0.05 eight of eight seeds recalled perfectly within 200-250 steps.
INIT_STD = 0.05


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the integration model; small enough to train two tasks in seconds on one CPU thread."""

    vocab_size: int  # tokens of the task: rows of the embedding, outputs of lm_head
    d_model: int = 64  # residual stream width
    n_layers: int = 2  # pre-norm blocks; MQAR's induction circuit needs at least two
    n_heads: int = 4  # query heads; head_dim = d_model // n_heads, even for the rotary pairs
    n_kv_heads: int = 4  # key/value heads, dividing n_heads; fewer than n_heads only for the gqa variant
    d_ff: int = 128  # hidden width of the gated MLP (gate and up projections each produce d_ff)
    max_seq: int = 128  # longest sequence; the rotary tables are built for this many positions
    norm_eps: float = 1e-5  # eps passed to every norm slot call
    rope_base: float = 10000.0  # rotary frequency base (RoFormer, https://arxiv.org/abs/2104.09864)
    window: int | None = None  # attention window, passed only when the slot is used as sliding_window

    def __post_init__(self) -> None:
        problems = []
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            problems.append(f"d_model={self.d_model} must split into n_heads={self.n_heads} heads of even width")
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads:
            problems.append(f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}")
        if min(self.vocab_size, self.n_layers, self.d_ff, self.max_seq) < 1:
            problems.append("vocab_size, n_layers, d_ff and max_seq must be >= 1")
        if self.window is not None and self.window < 1:
            problems.append(f"window must be None or >= 1, got {self.window}")
        if problems:
            raise ValueError(f"invalid ModelConfig {self}: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _rotary_tables(config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, (max_seq, head_dim // 2): angle pos * base^(-2i / head_dim), built in float64, stored fp32."""
    half = config.head_dim // 2
    inv_freq = config.rope_base ** (-torch.arange(half, dtype=torch.float64) * 2.0 / config.head_dim)
    angles = torch.arange(config.max_seq, dtype=torch.float64).unsqueeze(1) * inv_freq.unsqueeze(0)
    return angles.cos().to(torch.float32), angles.sin().to(torch.float32)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, S, D) by position: pairs (x_i, x_{i + D/2}) turn by their angle (GPT-NeoX layout)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def _linear(in_features: int, out_features: int) -> nn.Linear:
    # Built on the meta device: nn.Linear's own init draws nothing from the global RNG there; the Transformer
    # allocates real storage (to_empty) and fills it from its private generator.
    return nn.Linear(in_features, out_features, bias=False, device="meta")


class _Norm(nn.Module):
    """Owns the weight (and the bias for layer_norm) and hands them to the norm slot."""

    def __init__(self, width: int, slots: Slots, eps: float) -> None:
        super().__init__()
        self.slots, self.eps = slots, eps
        self.weight = nn.Parameter(torch.empty(width, device="meta"))
        self.bias = nn.Parameter(torch.empty(width, device="meta")) if slots.norm_variant == "layer_norm" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.slots.norm(x=x, weight=self.weight, bias=self.bias, eps=self.eps)
        return out


class _Attention(nn.Module):
    """Projections and rotary embedding around the attention slot."""

    def __init__(self, config: ModelConfig, slots: Slots) -> None:
        super().__init__()
        self.config, self.slots = config, slots
        kv_width = config.n_kv_heads * config.head_dim
        self.wq = _linear(config.d_model, config.d_model)
        self.wk = _linear(config.d_model, kv_width)
        self.wv = _linear(config.d_model, kv_width)
        self.wo = _linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        c = self.config

        def heads(t: torch.Tensor, n: int) -> torch.Tensor:  # (B, S, n * D) -> (B, n, S, D)
            return t.view(b, s, n, c.head_dim).transpose(1, 2)

        q = apply_rotary(heads(self.wq(x), c.n_heads), cos, sin)
        k = apply_rotary(heads(self.wk(x), c.n_kv_heads), cos, sin)
        v = heads(self.wv(x), c.n_kv_heads)
        window = c.window if self.slots.attention_variant == "sliding_window" else None
        out = self.slots.attention(q=q, k=k, v=v, causal=True, window=window, key_padding_mask=None)
        projected: torch.Tensor = self.wo(out.transpose(1, 2).reshape(b, s, c.d_model))
        return projected


class _MLP(nn.Module):
    """Gated MLP: down(act(gate(x)) * up(x)); SwiGLU through the swiglu slot, GeGLU/SiGLU otherwise."""

    def __init__(self, config: ModelConfig, slots: Slots) -> None:
        super().__init__()
        self.slots = slots
        self.gate = _linear(config.d_model, config.d_ff)
        self.up = _linear(config.d_model, config.d_ff)
        self.down = _linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate(x), self.up(x)
        if self.slots.activation_variant == "swiglu":
            hidden = self.slots.activation(x=None, gate=g, up=u)
        else:
            hidden = self.slots.activation(x=g, gate=None, up=None) * u
        out: torch.Tensor = self.down(hidden)
        return out


class _Block(nn.Module):
    def __init__(self, config: ModelConfig, slots: Slots) -> None:
        super().__init__()
        self.attn_norm = _Norm(config.d_model, slots, config.norm_eps)
        self.attn = _Attention(config, slots)
        self.mlp_norm = _Norm(config.d_model, slots, config.norm_eps)
        self.mlp = _MLP(config, slots)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        out: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return out


class Transformer(nn.Module):
    """Token embedding, pre-norm blocks with rotary attention and a gated MLP, final norm, untied lm_head.

    All weights are drawn from a private generator seeded with `seed`, so two models built with the same
    config and seed are bit-identical whatever the global RNG state, and building one leaves it untouched.
    """

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, config: ModelConfig, slots: Slots, seed: int) -> None:
        super().__init__()
        _check_fit(config, slots)
        self.config, self.slots = config, slots
        self.embed = nn.Embedding(config.vocab_size, config.d_model, device="meta")
        self.layers = nn.ModuleList(_Block(config, slots) for _ in range(config.n_layers))
        self.norm = _Norm(config.d_model, slots, config.norm_eps)
        self.lm_head = _linear(config.d_model, config.vocab_size)
        self.to_empty(device="cpu")  # every parameter so far lives on meta; _init_weights fills all of them
        cos, sin = _rotary_tables(config)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self._init_weights(seed)

    def _init_weights(self, seed: int) -> None:
        """N(0, INIT_STD), output projections (wo, down) / sqrt(2 n_layers) as in GPT-2; norms weight 1, bias 0."""
        # drawn in parameter registration order, which __init__ fixes
        gen = torch.Generator(device="cpu").manual_seed(seed)
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layers)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("norm.weight"):  # attn_norm, mlp_norm and the final norm
                    param.fill_(1.0)
                elif name.endswith("norm.bias"):
                    param.zero_()
                else:
                    std = residual_std if name.endswith(("wo.weight", "down.weight")) else INIT_STD
                    param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, S) token ids -> (B, S, vocab_size) next-token logits."""
        s = tokens.shape[1]
        if s > self.config.max_seq:
            raise ValueError(f"sequence of {s} tokens is longer than max_seq={self.config.max_seq}")
        cos, sin = self.rope_cos[:s], self.rope_sin[:s]
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits: torch.Tensor = self.lm_head(self.norm(x))
        return logits


def _check_fit(config: ModelConfig, slots: Slots) -> None:
    """Reject config/slot combinations that would call a module outside its variant's contract."""
    if slots.attention_variant == "sliding_window" and config.window is None:
        raise ValueError("attention_variant 'sliding_window' needs ModelConfig.window (an int >= 1), got None")
    if config.n_kv_heads != config.n_heads and slots.attention_variant != "gqa":
        raise ValueError(
            f"n_kv_heads={config.n_kv_heads} != n_heads={config.n_heads} sends grouped k/v heads, which only the "
            f"gqa variant's contract covers; the attention slot is used as {slots.attention_variant!r}. "
            "Fix: set n_kv_heads = n_heads or use the slot as 'gqa'."
        )
