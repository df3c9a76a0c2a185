"""Integration gate: the module swapped into a small transformer, trained and evaluated beside the reference.

The reference configuration is trained by the judge itself, once per run and configuration (references.py).
The candidate configuration is trained from the same seed on the same batches inside the contestant. The judge
sends evaluation inputs only and scores the logits that come back (scoring.py). Quantization modules instead
quantize the judge's trained reference model (quantized.py); mixed-precision policies are judged the same way.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from harness.core.contract import ModuleSource, ModuleSpec
from harness.gates.base import Channel, Gate, GateJob, Needs, OpenContestant, RunConfig, conclude
from harness.gates.integration.quantized import (
    LayerPlan,
    module_plan,
    quantization_request,
    reference_layers,
    score_quantization,
)
from harness.gates.integration.references import BASE, References, Variants, measure_spread, slot_variants
from harness.gates.integration.scoring import case_id, raised_case, request, score_task
from harness.integration.policy import MixedPrecisionPolicy
from harness.integration.runs import TaskSetup
from harness.perf.timer import seconds
from harness.protocol.errors import CandidateRaised
from harness.results.records import QUANTIZED_CASE, GateName, GateResult, Verdict


class PolicyUnusable(Exception):
    """A mixed-precision policy that cannot be judged as configured; the message names the file and the fix."""


class IntegrationGate(Gate):
    """Train the model with the module in its slot on each task, beside the judge's reference run."""

    name: ClassVar[GateName] = GateName.INTEGRATION
    needs: ClassVar[Needs] = Needs(loaded_candidate=True, exclusive=False)

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.references = References(config.seed, config.integration_setups)

    def skip_reason(self, spec: ModuleSpec) -> str | None:
        if spec.kind == "quantization" or slot_variants(spec) is not None:
            return None
        return f"no declared variant ({', '.join(spec.variants)}) fits a causal decoder"

    def run(self, job: GateJob, gate: GateResult) -> tuple[Verdict, str]:
        assert job.channel is not None
        spec, channel, selection = job.spec, job.channel, self.config.cases
        if spec.kind == "quantization":
            if not selection.wants(QUANTIZED_CASE):
                return selection.none_of(self.name, spec.variants)
            self._quantized(channel, module_plan(spec, self.references), gate)
            return conclude(gate)
        variants = slot_variants(spec)
        assert variants is not None  # skip_reason said so
        setups = [s for s in self.references.setups if selection.wants(case_id(s))]
        if not setups:
            return selection.none_of(self.name, spec.variants)
        self._prepare_references(setups, variants)
        for setup in setups:
            gate.reason = f"while training on {setup.task}"
            start = seconds()
            try:
                reply = channel.send(request(spec, setup, self.references, variants))
                case = score_task(spec, setup, self.references, variants, reply)
            except CandidateRaised as exc:
                case = raised_case(setup, str(exc))
            case.seconds = seconds() - start  # judge's clock: includes references it may train first
            gate.cases.append(case)
        return conclude(gate)

    def _prepare_references(self, setups: list[TaskSetup], variants: Variants) -> None:
        """Start what scoring `variants` on `setups` needs from the judge (the reference runs and the seed-to-seed
        spread), one thread per task, so that the judge trains while the contestant trains the candidate: on a
        cold machine the judge has several reference runs per task to the candidate's one. Scoring waits for
        whatever is not finished yet (References locks each run); an error here is left to scoring to meet again
        and report."""

        def prepare(setup: TaskSetup) -> None:
            try:
                self.references.run(setup, variants)
                self.references.run(setup, BASE)
                measure_spread(self.references, setup, variants)
            except Exception:  # scoring repeats the call and reports the error with the module
                return

        for setup in setups:
            threading.Thread(target=prepare, args=(setup,), name=f"references-{setup.task}", daemon=True).start()

    def _quantized(self, channel: Channel, plan: LayerPlan, gate: GateResult) -> None:
        """Quantize the judge's trained reference model by `plan` in the contestant and score the result."""
        gate.reason = "while quantizing the trained reference model"
        start = seconds()
        setup, message = quantization_request(plan, self.references)
        try:
            case = score_quantization(setup, self.references, plan, channel.send(message))
        except CandidateRaised as exc:
            case = raised_case(setup, str(exc))
        case.seconds = seconds() - start  # judge's clock: includes the reference it may train first
        case.case = QUANTIZED_CASE
        gate.cases.append(case)

    def run_policy(
        self,
        policy: MixedPrecisionPolicy,
        sources: dict[str, ModuleSource],
        open_contestant: OpenContestant,
        gate: GateResult,
    ) -> tuple[Verdict, str]:
        """A mixed-precision policy: its modules quantize the reference model layer by layer, in one contestant."""
        missing = [m for m in policy.modules if m not in sources]
        if missing:
            raise PolicyUnusable(
                f"{policy.source}: names {', '.join(map(repr, missing))}, expected registered "
                "quantization modules. Fix: use names `harness list` shows."
            )
        layers = reference_layers(self.references)
        plan_names = policy.assign(layers)
        if not plan_names:
            raise PolicyUnusable(
                f"{policy.source}: no rule matches a layer of the model ({', '.join(layers)}). Fix the patterns."
            )
        with open_contestant(policy.name) as channel:
            specs = {name: channel.load(sources[name]) for name in policy.modules}
            wrong = [f"{n} ({s.kind})" for n, s in specs.items() if s.kind != "quantization"]
            if wrong:
                raise PolicyUnusable(
                    f"{policy.source}: {', '.join(wrong)} not quantization modules. Fix the rule values."
                )
            plan = {layer: (name, specs[name].variants[0]) for layer, name in plan_names.items()}
            self._quantized(channel, plan, gate)
        return conclude(gate)


__all__ = ["IntegrationGate", "PolicyUnusable"]
