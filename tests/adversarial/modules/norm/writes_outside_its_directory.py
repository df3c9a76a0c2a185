"""RMSNorm that, while imported, tries to leave a file in the checkout, in the home of the checkout's owner (the user
who runs the judge; the contestant's own $HOME is its private directory) and in /tmp, and reports each outcome."""

import os
import pwd
from pathlib import Path

from harness import register

MARK = "adversarial-writes-outside-its-directory"
CHECKOUT = Path(__file__).resolve().parents[4]


def attempt(path: Path) -> str:
    try:
        with open(path, "x") as handle:
            handle.write("written by a contestant\n")
        return f"written ({path})"
    except OSError as exc:
        return f"{exc.strerror} ({path})"


TARGETS = {
    "checkout": CHECKOUT / MARK,
    "home": Path(pwd.getpwuid(os.stat(CHECKOUT).st_uid).pw_dir) / MARK,
    "/tmp": Path("/tmp") / MARK,
}
raise RuntimeError(
    "writing outside its directory: " + "; ".join(f"{where}: {attempt(path)}" for where, path in TARGETS.items())
)


@register(kind="norm", variant="rms_norm", exact=True)
class WritesOutsideItsDirectory:
    pass
