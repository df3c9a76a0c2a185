"""Gaming the timing: each trick gets its exact verdict from the performance gate, with a reason that names it.

What each module games is the measurement: the clocks, the timing loop, hooks around the calls, the warm-up that
sizes the blocks, repeated inputs, or where the work runs. Most pass the unit gate (they run in the corpus run too);
a timing trick is the performance gate's to catch. All of them are judged once, through the performance gate alone,
on the small case of their kind, with short measurements (`FAST`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.kinds.activation import ActivationKind
from harness.kinds.norm import NormKind
from harness.results.records import ModuleResult
from tests.adversarial.conftest import judge, reasons

TAMPERED, FAIL = "tampered", "fail"

# (module, verdict, what the reason must say)
TRICKS = [
    # replacing what the baseline or the timer runs: the snapshot taken before the candidate was imported
    (
        "rms_norm_patches_torch",
        TAMPERED,
        "after importing the candidate, objects the baseline depends on were replaced: torch.rsqrt",
    ),
    ("rms_norm_kernel_override", TAMPERED, "dispatch table of aten::rsqrt"),
    ("rms_norm_halves_its_clock", TAMPERED, "replaced: harness.perf.timer.CpuTimer.time"),
    ("rms_norm_patches_quiet_gc", TAMPERED, "replaced: harness.perf.timer.quiet_gc, harness.worker.perf.quiet_gc"),
    (
        "rms_norm_patches_perf_counter",
        TAMPERED,
        "after importing the candidate, objects the baseline depends on were replaced: time.perf_counter",
    ),
    (
        "rms_norm_patches_monotonic",
        TAMPERED,
        "after timing, objects the baseline depends on were replaced: time.monotonic",
    ),
    # clocks replaced after the import check: the contestant's clock readings must fit the judge's clock, and what
    # the timer leaves out of a call must be the same for both sides
    ("rms_norm_slows_the_clock", TAMPERED, "on the judge's clock: its clock was replaced"),
    ("rms_norm_discounts_its_calls", TAMPERED, "part of its work ran outside the timed region, or its clock skipped"),
    # hooks active while timing
    ("rms_norm_function_mode", TAMPERED, "after importing the candidate: a torch function mode is active"),
    ("rms_norm_interval_timer", TAMPERED, "a profiling interval timer is armed"),
    ("rms_norm_profile_hook", TAMPERED, "while timing: a Python profile hook (sys.setprofile) is set"),
    ("rms_norm_trace_hook", TAMPERED, "while timing: a Python trace hook (sys.settrace) is set"),
    ("rms_norm_gc_callback", TAMPERED, "garbage-collector callbacks (gc.callbacks) are installed"),
    # slower only while the judge sizes the blocks
    ("rms_norm_slow_warmup", TAMPERED, "x longer while the judge sized the blocks"),
    # work elsewhere: another thread (/proc), another process (the contestant's process tree)
    ("rms_norm_busy_thread", TAMPERED, "of CPU during a timed block"),
    # the filler thread's CPU in a timed block; on a busy machine the queue it leaves behind may first slow the calls
    # that size the blocks past the calibration limit: caught there, one check earlier; and when the other core is so
    # busy that the filler runs mostly between blocks, its CPU over the whole measurement
    (
        "silu_fills_later",
        TAMPERED,
        ("of CPU during a timed block", "longer while the judge sized the blocks", "of CPU over the measurement"),
    ),
    # a filler idle during every block, working only in the pauses between them: its CPU over the whole measurement
    ("silu_fills_between_blocks", TAMPERED, ("of CPU over the measurement", "of CPU during a timed block")),
    ("rms_norm_child_process", TAMPERED, "the contestant started processes"),
    ("rms_norm_process_pool", TAMPERED, "the contestant started processes"),
    # answers remembered from an earlier call on the same input buffer: the salted inputs and the output checks
    ("rms_norm_memoized", FAIL, "candidate output during timing: a cached answer"),
    ("rms_norm_content_hash", FAIL, "candidate output during timing: a cached answer"),
]


@pytest.fixture(scope="module")
def timed() -> Iterator[dict[str, ModuleResult]]:
    """Every module of TRICKS through the performance gate once, on the small case of its kind."""
    with pytest.MonkeyPatch.context() as patch:
        for kind in (NormKind, ActivationKind):
            original = kind.perf_cases
            patch.setattr(kind, "perf_cases", lambda self, variant, original=original: original(self, variant)[:1])
        yield judge([name for name, _, _ in TRICKS], ("perf",))


@pytest.mark.parametrize(("name", "verdict", "reason"), TRICKS, ids=[name for name, _, _ in TRICKS])
def test_timing_trick_gets_its_verdict_and_is_named(
    timed: dict[str, ModuleResult], name: str, verdict: str, reason: str | tuple[str, ...]
) -> None:
    result = timed[name]
    (gate,) = result.gates
    assert (gate.verdict, result.verdict) == (verdict, verdict), reasons(result)
    if verdict == TAMPERED:
        assert any(r in gate.reason for r in ((reason,) if isinstance(reason, str) else reason)), gate.reason
        assert not gate.summary  # no speed figure from a tampered measurement
    else:
        assert isinstance(reason, str) and reason in reasons(result), reasons(result)
