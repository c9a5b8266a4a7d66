"""Fault injection for the data-parallel tests, loaded as ``sitecustomize`` by every process they start.

With ``FAULT_RANK`` equal to the process's ``RANK``, the training batch number ``FAULT_AT_BATCH`` of that
rank ends the process by ``FAULT_KIND``: ``kill`` (SIGKILL, nothing cleaned up) or ``raise`` (an exception).
"""

import os

if os.environ.get("RANK") is not None and os.environ.get("RANK") == os.environ.get("FAULT_RANK"):
    import signal

    import pipeline.training.loop as loop

    _collate, _calls = loop.collate, [0]

    def collate(*args, **kwargs):
        _calls[0] += 1
        if _calls[0] == int(os.environ["FAULT_AT_BATCH"]):
            if os.environ.get("FAULT_KIND") == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise ValueError(f"injected fault on rank {os.environ['RANK']} at batch {_calls[0]}")
        return _collate(*args, **kwargs)

    loop.collate = collate
