"""RMSNorm that, while imported, tries to replace its captured output (a log in its private directory, or its
stdout) with a symbolic link to the judge's environment, then dies: a judge that followed the link to show the
'last output' of a crash would copy its own environment (tokens included) into the verdict's reason."""

import os

from harness import register

for log in (os.path.join(os.environ["HOME"], "output.log"), f"/proc/{os.getpid()}/fd/1"):
    try:
        os.unlink(log)
    except OSError:
        pass
    try:
        os.symlink(f"/proc/{os.getppid()}/environ", log)
    except OSError:
        pass
os._exit(5)


@register(kind="norm", variant="rms_norm", exact=True)
class SwapsItsLogForALink:
    pass
