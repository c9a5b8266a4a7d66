"""Fault points: named places where a test can make this process die as ``kill -9`` would.

``fault_point("after-log-model")`` does nothing unless ``$PIPELINE_FAULT_POINT`` names that point, in which
case the process sends itself SIGKILL there (no clean-up, no ``finally``, no flush): the chaos test arms
one point per run and checks that the next run recovers. Counted points (``name#N``) fire on the Nth pass.
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINE_FAULT_POINT"
_passes: dict[str, int] = {}


def fault_point(name: str) -> None:
    armed = os.environ.get(ENV)
    if not armed:
        return
    point, _, nth = armed.partition("#")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if not nth or _passes[name] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)
