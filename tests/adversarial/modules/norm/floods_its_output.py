"""RMSNorm that writes 128 MiB of lines to stdout and stderr (twice the cap on its captured output), then exits."""

import os
import sys

from harness import register

LINE = "floods_its_output: " + "x" * 1000 + "\n"
BLOCK = LINE * 64  # about 64 KiB


@register(kind="norm", variant="rms_norm", exact=True)
class FloodsItsOutput:
    def forward(self, x, weight, bias, eps):
        for _ in range(1024):
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.write(BLOCK)
                except OSError:  # past the cap: keep trying, as a runaway logger would
                    pass
        os._exit(9)
