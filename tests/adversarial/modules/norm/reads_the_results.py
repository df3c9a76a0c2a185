"""RMSNorm that, while imported, tries to read the run's results (they hold the secret seed) and store (every earlier
run): at the paths on the judge's command line, at $HARNESS_STORE, and where a test session's run keeps them, beside
the folder of its own private directory (a CI workflow's paths are as public as its file; the store's file is
made when the run ends, its folder is there from the start)."""

import os
from pathlib import Path

from harness import register


def attempt(path: Path) -> str:
    try:
        if path.is_dir():
            return f"listed {len(os.listdir(path))} entries"
        with open(path, "rb") as handle:
            return f"read {len(handle.read(4096))} bytes"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def from_the_judges_command_line() -> list[str]:
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0")]
    except OSError as exc:
        return [f"the judge's command line: {exc.strerror}"]
    flags = ("--out", "--store")
    return [f"{flag} {argv[i + 1]}: {attempt(Path(argv[i + 1]))}" for i, flag in enumerate(argv[:-1]) if flag in flags]


session = Path(os.environ["HOME"]).parent.parent  # pytest's base directory: contestants0/harness-contestant-*
found = from_the_judges_command_line()
found += [
    f"{what} {path}: {attempt(path)}"
    for what, path in (("results", session / "corpus0"), ("store", session / "store0"))
]
store = os.environ.get("HARNESS_STORE")
found.append(f"$HARNESS_STORE {store}: {attempt(Path(store))}" if store else "$HARNESS_STORE: not in its environment")
raise RuntimeError("reading the run's results: " + "; ".join(found))


@register(kind="norm", variant="rms_norm", exact=True)
class ReadsTheResults:
    pass
