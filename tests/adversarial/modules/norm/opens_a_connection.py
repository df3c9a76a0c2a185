"""RMSNorm that tries to open a TCP connection (to send inputs or results out, or fetch precomputed answers)."""

import socket

from harness import register

try:
    socket.create_connection(("127.0.0.1", 9), timeout=2).close()
    OUTCOME = "connected"
except OSError as exc:
    OUTCOME = exc.strerror or str(exc)
raise RuntimeError(f"opening a TCP connection: {OUTCOME}")


@register(kind="norm", variant="rms_norm", exact=True)
class OpensAConnection:
    pass
