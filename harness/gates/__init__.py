"""The gates a module goes through, in order; each implements `harness.gates.base.Gate`.

Adding a gate: write `harness/gates/<name>/` (or `<name>.py`) with a `Gate` subclass, add its name to
`GateName` (results/records.py) and one line below.
"""

from harness.gates.base import Gate, GateJob, Needs, RunConfig
from harness.gates.integration import IntegrationGate
from harness.gates.performance import PerformanceGate
from harness.gates.unit import UnitGate
from harness.results.records import GateName

GATES: dict[GateName, type[Gate]] = {
    UnitGate.name: UnitGate,
    IntegrationGate.name: IntegrationGate,
    PerformanceGate.name: PerformanceGate,
}

__all__ = ["GATES", "Gate", "GateJob", "Needs", "RunConfig"]
