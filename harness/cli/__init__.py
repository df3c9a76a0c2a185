"""The top layer: the `harness` command (main.py), its terminal tables (terminal.py), `harness new` (scaffold.py)."""

from harness.cli.main import main

__all__ = ["main"]
