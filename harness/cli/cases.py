"""`harness check --case ID --dtype D`: run only some cases of the named modules, to reproduce a failure.

Case ids are the ones results.json records: a unit case is `variant/sizes/regime` in every dtype the kind checks
(so `--dtype` picks the dtype), an integration case `integration/TASK`, a perf case `perf/MODE/variant/sizes/regime`.
Unit and integration cases run alone; perf cases are timed together and decided on their geometric mean, so a perf
case runs its whole gate. Only the gates owning a selected case run.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence

from harness.core.contract import ModuleSource
from harness.gates.base import CaseSelection
from harness.gates.integration.scoring import case_id
from harness.gates.performance.inputs import Mode
from harness.integration.policy import MixedPrecisionPolicy
from harness.integration.setups import DEFAULT_SETUPS
from harness.kinds import KINDS
from harness.results.records import QUANTIZED_CASE, GateName


class CaseError(Exception):
    """--case or --dtype names something this run cannot select; the message lists what it can (exit code 2)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--case",
        action="append",
        default=None,
        metavar="ID",
        help="run only this case (repeatable or comma-separated), as results.json names it, e.g. "
        "rms_norm/r1-h37/large; with the failed run's --seed it gets the same inputs (a perf case runs the perf gate)",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        default=None,
        metavar="DTYPE",
        help="unit gate: only these dtypes, e.g. float16 (repeatable or comma-separated)",
    )


def _split(values: Sequence[str] | None) -> list[str]:
    return list(dict.fromkeys(v.strip() for value in values or () for v in value.split(",") if v.strip()))


def case_ids(kind_name: str) -> dict[str, GateName]:
    """Every case id a module of this kind can have, over all its variants, and the gate that owns it."""
    kind = KINDS[kind_name]
    ids: dict[str, GateName] = {}
    for variant in kind.variants:
        ids |= {case.id: GateName.UNIT for case in kind.battery(variant)}
    if kind_name == "quantization":
        ids[QUANTIZED_CASE] = GateName.INTEGRATION
    else:
        ids |= {case_id(setup): GateName.INTEGRATION for setup in DEFAULT_SETUPS}
    for variant in kind.variants:
        ids |= {Mode(case, b).label: GateName.PERF for case in kind.perf_cases(variant) for b in (False, True)}
    return ids


def _known(sources: Sequence[ModuleSource], policies: Sequence[MixedPrecisionPolicy]) -> dict[str, GateName]:
    """The case ids of the named modules' kinds (every kind for an entry point: its kind is known once loaded)."""
    known: dict[str, GateName] = {}
    for source in sources:
        for kind in [source.kind] if source.kind in KINDS else list(KINDS):
            known |= case_ids(kind)
    if policies:
        known[QUANTIZED_CASE] = GateName.INTEGRATION
    return known


def _unknown(unknown: list[str], known: dict[str, GateName], names: str) -> CaseError:
    close = {c: difflib.get_close_matches(c, list(known), n=3, cutoff=0.5) for c in unknown}
    hints = "; ".join(f"{c!r}: closest {', '.join(m)}" for c, m in close.items() if m)
    by_gate = "\n".join(
        f"  {gate}: {' '.join(sorted(c for c, g in known.items() if g == gate))}"
        for gate in GateName
        if gate in known.values()
    )
    return CaseError(
        f"no case {', '.join(map(repr, unknown))} for {names}{' (' + hints + ')' if hints else ''}. "
        "Fix: pass a case id as results.json or `harness explain` names it. "
        f"The case ids of the kind of {names}:\n{by_gate}"
    )


def select(
    args: argparse.Namespace,
    sources: Sequence[ModuleSource],
    policies: Sequence[MixedPrecisionPolicy],
    gates: tuple[GateName, ...],
    dtypes: Sequence[str],
) -> tuple[tuple[GateName, ...], CaseSelection]:
    """The gates to run and the cases they keep; without --case or --dtype, `gates` and every case."""
    wanted, chosen = _split(getattr(args, "case", None)), _split(getattr(args, "dtype", None))
    if not wanted and not chosen:
        return gates, CaseSelection()
    names = ", ".join([s.name for s in sources] + [p.name for p in policies])
    wrong = [d for d in chosen if d not in dtypes]
    if wrong:
        raise CaseError(f"--dtype {', '.join(wrong)}: the unit gate checks {', '.join(dtypes)} on this machine.")
    known = _known(sources, policies)
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise _unknown(unknown, known, names)
    if wanted:
        left_out = [c for c in wanted if known[c] not in gates]
        if left_out:
            raise CaseError(
                f"--case {', '.join(left_out)} belongs to the {', '.join(sorted({known[c] for c in left_out}))} gate, "
                f"which --gates {','.join(gates)} leaves out. Fix: drop --gates, or add that gate."
            )
        gates = tuple(g for g in gates if g in {known[c] for c in wanted})
    if policies and GateName.INTEGRATION not in gates:
        raise CaseError(
            f"{', '.join(p.name for p in policies)}: a policy has one case, {QUANTIZED_CASE} (integration gate). "
            "Fix: select that case, or name the policy's modules."
        )
    if chosen and GateName.UNIT not in gates:
        raise CaseError("--dtype selects the unit gate's dtypes, and this run has no unit case. Fix: drop --dtype.")
    return gates, CaseSelection(frozenset(wanted), frozenset(chosen))
