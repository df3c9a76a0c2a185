"""RMSNorm that, while imported, hunts for credentials: in its own environment, in the judge's, and in that of every
process it can name (each pid tried in turn, as listing /proc may be refused); it reports what it read and found."""

import os

from harness import register

SECRETS = ("GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "ACTIONS_RUNTIME_TOKEN", "HARNESS_STORE")


def environ_of(pid: int) -> str:
    """The secret names in /proc/<pid>/environ, or why it cannot be read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            names = {entry.split(b"=", 1)[0].decode(errors="replace") for entry in handle.read().split(b"\0")}
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return "read, found " + (", ".join(sorted(names & set(SECRETS))) or "none")


def every_process() -> str:
    top = os.getpid() + 2000
    outcomes = [environ_of(pid) for pid in range(1, top) if pid != os.getpid()]
    readable = [o for o in outcomes if o.startswith("read")]
    refused = outcomes.count("Permission denied")
    found = sorted({o for o in readable if o != "read, found none"})
    return f"{len(readable)} readable, {refused} refused of pids 1 to {top}; found {found or 'none'} in them"


own = sorted(os.environ)
raise RuntimeError(
    f"hunting for tokens: own environment {', '.join(own)}; secrets in it: "
    f"{', '.join(sorted(set(own) & set(SECRETS))) or 'none'}; judge {os.getppid()}: {environ_of(os.getppid())}; "
    f"{every_process()}"
)


@register(kind="norm", variant="rms_norm", exact=True)
class HuntsForTokens:
    pass
