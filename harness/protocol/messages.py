"""Every message between judge and contestant, as typed and versioned records.

Each request names the reply it expects (`Request[ReplyType]`); the contestant answers with that reply or
with `Failed`. The judge checks every reply's fields against these annotations on receipt (codec.py), so a
hostile contestant can send wrong numbers but never a wrong shape of message. Tensors the contestant
returns are typed `Any` where a module decides what they are (a tensor, a dict of tensors, or a marker string
for something unsendable); the gates check those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import torch

from harness.core.contract import ModuleSource, ModuleSpec
from harness.protocol.codec import Int64s, Message, TensorShape
from harness.protocol.frames import ProtocolError

R = TypeVar("R", bound=Message)


@dataclass(frozen=True)
class Request(Message, Generic[R]):
    """A judge-to-contestant message; `reply` is the message class the contestant answers with."""

    reply: ClassVar[type[Message]]


# --- replies ------------------------------------------------------------------------------------------------


class FailureStatus(StrEnum):
    RAISED = "raised"  # the module (or the worker on its behalf) raised; the message says what
    OOM = "oom"  # an allocation failed under the contestant's memory cap


@dataclass(frozen=True)
class Failed(Message):
    """The request could not be answered: the module raised, or memory ran out."""

    op: ClassVar[str] = "failed"
    status: FailureStatus
    message: str
    traceback: str = ""


@dataclass(frozen=True)
class Done(Message):
    """The request was carried out; nothing to return."""

    op: ClassVar[str] = "done"


@dataclass(frozen=True)
class Loaded(Message):
    op: ClassVar[str] = "loaded"
    spec: ModuleSpec  # what the module registered, validated in the contestant


@dataclass(frozen=True)
class CallReply(Message):
    """What the contestant returned for one Call."""

    op: ClassVar[str] = "call_reply"
    out: Any  # a tensor for function-like kinds, a dict of tensors for quantize
    out_repeat: Any = None  # the second call's result (None when repeat=False)
    grads: dict[str, Any] = field(default_factory=dict)  # grad of each grad_input (None if it got none)
    inputs_after: dict[str, Any] = field(default_factory=dict)  # tensor arguments as they were after the call
    aliased: list[str] = field(default_factory=list)  # inputs whose storage the output shares
    unreached: list[str] = field(default_factory=list)  # grad inputs the output's autograd graph never reaches


@dataclass(frozen=True)
class Trained(Message):
    """One integration training run: raw logits and the training log, never scores."""

    op: ClassVar[str] = "trained"
    init_logits: torch.Tensor  # logits of the untrained model on the init batch
    init_grads: dict[str, torch.Tensor]  # gradient of every parameter at init
    losses: list[float]  # training loss per step
    eval_logits: list[Any]  # logits per evaluation batch (the judge checks each is a tensor of the right shape)
    seconds: float  # the contestant's own clock, reported, never decided on


@dataclass(frozen=True)
class Quantized(Message):
    """The reference model quantized by a plan: raw logits, packed weights and their dequantization."""

    op: ClassVar[str] = "quantized"
    eval_logits: list[Any]
    packed: dict[str, Any]  # layer -> the module's packed weight (a dict of tensors)
    dequantized: dict[str, torch.Tensor]  # layer -> the weight the quantized layer computes with


@dataclass(frozen=True)
class BaselineReady(Message):
    op: ClassVar[str] = "baseline_ready"
    ops: list[str]  # aten operators the baseline reached, forward and backward
    threads: int  # torch threads the contestant times with


@dataclass(frozen=True)
class WarmedUp(Message):
    op: ClassVar[str] = "warmed_up"
    rounds: int
    ns: dict[str, list[int]]  # side -> the timed calls after the warm-up that the judge sizes blocks from


@dataclass(frozen=True)
class BlockTimes(Message):
    op: ClassVar[str] = "block_times"
    ns: dict[str, Int64s]  # side -> one time per round, in the judge's order
    hooks: list[str]  # hooks found active before or after the block (empty when clean)
    # The clock read just before and just after each timer.time(call), two per call in call order: the judge fits
    # them into its own clock around the block, and compares what the timer left out of each side's calls.
    stamps: Int64s


@dataclass(frozen=True)
class Outputs(Message):
    op: ClassVar[str] = "outputs"
    outputs: list[Any]  # one per pick: the output tensor, or None when that call kept none


@dataclass(frozen=True)
class PeakMemory(Message):
    op: ClassVar[str] = "peak_memory"
    peak_bytes: dict[str, int]  # side -> peak tensor bytes of one call


@dataclass(frozen=True)
class FreshOutputs(Message):
    op: ClassVar[str] = "fresh_outputs"
    outputs: dict[str, Any]  # side -> output on fresh inputs (None when not a tensor)


@dataclass(frozen=True)
class IntegrityFacts(Message):
    op: ClassVar[str] = "integrity_facts"
    changed: list[str]  # objects the baseline depends on that were replaced since the snapshot
    hooks: list[str]  # hooks active now


# --- requests -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load(Request[Loaded]):
    """Import and validate a module; build an instance unless only listing."""

    op: ClassVar[str] = "load"
    reply: ClassVar[type[Message]] = Loaded
    source: ModuleSource
    instantiate: bool = True


@dataclass(frozen=True)
class Call(Request[CallReply]):
    """`method(**args)` on the module, then backward with `grad_out` through `grad_inputs`."""

    op: ClassVar[str] = "call"
    reply: ClassVar[type[Message]] = CallReply
    method: str
    args: dict[str, Any]
    grad_inputs: tuple[str, ...] = ()
    grad_out: torch.Tensor | None = None
    repeat: bool = True  # call a second time (no backward) so the judge can check determinism


@dataclass(frozen=True)
class Integrate(Request[Trained]):
    """Train the integration model with the loaded module in its slot and return logits for `eval_inputs`."""

    op: ClassVar[str] = "integrate"
    reply: ClassVar[type[Message]] = Trained
    kind: str
    variants: tuple[str, str, str]  # (attention, norm, activation) variants the slots are used as
    setup: dict[str, Any]  # TaskSetup.as_dict()
    seed: int
    init_inputs: torch.Tensor
    init_targets: torch.Tensor
    eval_inputs: list[torch.Tensor]


@dataclass(frozen=True)
class QuantizeModel(Request[Quantized]):
    """Quantize the judge's trained reference model layer by layer with the loaded quantization modules."""

    op: ClassVar[str] = "quantize_model"
    reply: ClassVar[type[Message]] = Quantized
    setup: dict[str, Any]  # TaskSetup.as_dict()
    state: dict[str, torch.Tensor]
    plan: dict[str, tuple[str, str]]  # layer -> (module name, variant)
    eval_inputs: list[torch.Tensor]


@dataclass(frozen=True)
class Salt:
    """Which tensor argument of a timing pool is salted before each call, and where in each entry."""

    name: str  # a floating-point tensor argument of the timed method
    positions: tuple[int, ...]  # flat index per pool entry


@dataclass(frozen=True)
class PerfBaseline(Request[BaselineReady]):
    """Pin this process, import the baseline (before any candidate), run it once, and snapshot what it uses."""

    op: ClassVar[str] = "perf_baseline"
    reply: ClassVar[type[Message]] = BaselineReady
    kind: str
    variant: str
    core: int  # the CPU core the contestant pins itself to
    baseline: ModuleSource | None  # None: the kind's reference
    probe: dict[str, Any]  # one call's arguments for the fingerprinting run
    grad_names: tuple[str, ...]
    # The judge will check this contestant's snapshot after importing a candidate into it (the timing contestant;
    # not the clean worker): torch subsystems a candidate may reach lazily are loaded before the snapshot.
    watched: bool = True


@dataclass(frozen=True)
class PerfCase(Request[Done]):
    """The input pools of one (case, mode), to be prepared by each side's module (untimed)."""

    op: ClassVar[str] = "perf_case"
    reply: ClassVar[type[Message]] = Done
    sides: tuple[str, ...]
    pools: dict[str, list[dict[str, Any]]]  # pool name -> entries (call arguments); empty with same_pools
    backward: bool
    grad_out: torch.Tensor | None
    grad_names: tuple[str, ...]
    salts: dict[str, Salt]  # pool name -> its salt
    # The previous perf_case's pools again (the other mode of the same case), as they are now: only the salted
    # position of each entry differs from what was sent, and it is rewritten before every call.
    same_pools: bool = False


@dataclass(frozen=True)
class PerfWarmup(Request[WarmedUp]):
    op: ClassVar[str] = "perf_warmup"
    reply: ClassVar[type[Message]] = WarmedUp
    seconds: float
    calls: int  # timed calls per side after the warm-up, reported for the judge to size blocks from


@dataclass(frozen=True)
class PerfBlock(Request[BlockTimes]):
    """Timed rounds in the judge's order, each side on its assigned pool, every call's input salted first."""

    op: ClassVar[str] = "perf_block"
    reply: ClassVar[type[Message]] = BlockTimes
    sides: list[str]  # the sides this block calls
    order: Annotated[torch.Tensor, TensorShape(torch.int8, 2)]  # per round, indices into `sides` in call order
    pools: dict[str, str]  # side -> pool for this block
    salt_values: dict[str, torch.Tensor]  # pool -> one value per round

    @classmethod
    def of(cls, order: list[list[str]], pools: dict[str, str], salt_values: dict[str, torch.Tensor]) -> PerfBlock:
        """The request for rounds given as side names in call order (every round calls the same sides)."""
        sides = sorted({side for sides in order for side in sides})
        index = {side: i for i, side in enumerate(sides)}
        rows = [[index[side] for side in sides_r] for sides_r in order]
        return cls(sides, torch.tensor(rows, dtype=torch.int8).reshape(len(rows), -1), pools, salt_values)

    def calls(self) -> list[tuple[int, str]]:
        """(round, side) of every call, in call order."""
        return [(r, self.sides[i]) for r, row in enumerate(self.order.tolist()) for i in row]


@dataclass(frozen=True)
class PerfOutputs(Request[Outputs]):
    """Outputs of the picked (round, side) calls of the last block; the block's other outputs are dropped."""

    op: ClassVar[str] = "perf_outputs"
    reply: ClassVar[type[Message]] = Outputs
    picks: list[tuple[int, str]]


@dataclass(frozen=True)
class PerfMemory(Request[PeakMemory]):
    op: ClassVar[str] = "perf_memory"
    reply: ClassVar[type[Message]] = PeakMemory


@dataclass(frozen=True)
class PerfFresh(Request[FreshOutputs]):
    op: ClassVar[str] = "perf_fresh"
    reply: ClassVar[type[Message]] = FreshOutputs
    inputs: dict[str, dict[str, Any]]  # side -> call arguments never used in timing


@dataclass(frozen=True)
class PerfIntegrity(Request[IntegrityFacts]):
    op: ClassVar[str] = "perf_integrity"
    reply: ClassVar[type[Message]] = IntegrityFacts


@dataclass(frozen=True)
class Exit(Message):
    """End the contestant (no reply)."""

    op: ClassVar[str] = "exit"


REQUESTS: dict[str, type[Message]] = {
    cls.op: cls
    for cls in (
        Load,
        Call,
        Integrate,
        QuantizeModel,
        PerfBaseline,
        PerfCase,
        PerfWarmup,
        PerfBlock,
        PerfOutputs,
        PerfMemory,
        PerfFresh,
        PerfIntegrity,
        Exit,
    )
}


def request_from_frame(frame: dict[str, Any]) -> Message:
    """The request in a frame from the judge (contestant side)."""
    cls = REQUESTS.get(str(frame.get("op")))
    if cls is None:
        raise ProtocolError(f"unknown request {str(frame.get('op'))[:80]!r}")
    return cls.from_frame(frame)
