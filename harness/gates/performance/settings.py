"""Every fixed number the performance gate measures with; the adjustable ones are `PerfSettings` (perf/config.py)."""

from __future__ import annotations

import torch

from harness.perf.config import PerfSettings

SIDES = ("candidate", "baseline")
POOLS = ("A", "B")  # two input pools; the sides swap them every block
DTYPE = torch.float32  # CPU speed is judged in float32; low-precision kernels are a GPU matter

# Input pool entries per side: at least 2, so consecutive calls never reuse one input set; at most 16, so
# building the pools stays a small part of the gate's time.
POOL_ENTRIES = (2, 16)
# Rounds per block: at least 3, so a block's median has something to take the middle of; at most 4000, so a
# block of the fastest calls (~1 us) still ends near `block_s`.
BLOCK_ROUNDS = (3, 4000)
MIN_RETAINED_ROUNDS = 2  # rounds per block when outputs are so large that `retain_bytes` allows fewer
# The first round after a judge message runs with colder caches; blocks longer than this drop it from the median.
DROP_FIRST_ROUND_ABOVE = 3
BUSY_BLOCK_SHARE = 0.25  # a thread spinning on the timed core gets about half a block; a quarter is flagged
# The contestant's threads other than the timing one, over a whole (case, mode) including the gaps between blocks:
# at most this share of its time, and never less than WINDOW_TICKS clock ticks (the kernel counts CPU in ticks).
WINDOW_SHARE = 0.05
WINDOW_TICKS = 3
CHANGES_SHOWN = 5  # replaced objects named in a tampering reason (the rest elided)
# Timed calls per side after the warm-up, which size the blocks. Their fastest may be at most CALIBRATION_FACTOR
# times a side's median call while timed: a module slower only while blocks are sized (it can tell: the warm-up
# calls it on one input, again and again) gets blocks of a few rounds, whose noise can hide a regression. Three
# calls, so one preempted call (a 4 ms time slice against tens of microseconds) cannot make the fastest slow.
CALIBRATION_CALLS = 3
CALIBRATION_FACTOR = 10.0
# What the timer leaves out of a call (the clock read just before and after timer.time(call), minus the time it
# reports) is its own overhead, the same code for both sides: a few hundred ns, up to about a microsecond more after
# a call that evicted the interpreter from the caches (medians per block of the 14 shipped modules differed by at
# most 0.7 us between the sides on small calls, 3.6 us on millisecond calls). The candidate's median may exceed the
# baseline's by a quarter of the threshold's share of a baseline call, or by UNTIMED_FLOOR_NS when that is more;
# beyond it, part of the candidate's work ran outside the timed region or its clock skipped.
UNTIMED_FLOOR_NS = 3_000
# A wrong candidate output is also compared with the answers to the candidate's earlier inputs in the same pool
# entry: the entry as generated, and its earliest and latest this many earlier salts (a cached answer is one of them).
EARLIER_INPUTS_CHECKED = 2

# The clean worker: the baseline alone, in a process that never imports the candidate. Coarse by design (it only
# has to show the baseline was not slowed 3x), so short: two pool entries, a 0.1 s warm-up, three blocks.
CLEAN_POOL_ENTRIES = 2
CLEAN_WARMUP_S = 0.1
CLEAN_BLOCKS = 3

__all__ = ["BLOCK_ROUNDS", "DTYPE", "POOLS", "POOL_ENTRIES", "SIDES", "PerfSettings"]
