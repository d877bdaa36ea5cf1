"""uvicorn's multi-process supervisor, told at once when an API process dies.

Found by `coffer check bank`: a SIGKILLed API process was replaced only ~60 s later. The
supervisor pings each child over a pipe and waits up to `timeout_worker_healthcheck` (60 s, see
coffer serve) for the answer; it also kept its own copy of the child's end of that pipe, so a
child that died mid-ping never closed the pipe and the wait ran to the timeout, with one API
process fewer meanwhile. Closing the parent's copy once the child has its own makes a dead
child's pipe read as end-of-file: the ping fails at once and the child is replaced.
"""

from __future__ import annotations

from uvicorn.supervisors import multiprocess


class PromptlyReplacedProcess(multiprocess.Process):
    def start(self) -> None:
        super().start()
        # The child received its own copy of this end when it was spawned.
        self.child_conn.close()


def use_prompt_replacement() -> None:
    """Make uvicorn's supervisor start its children as PromptlyReplacedProcess."""
    multiprocess.Process = PromptlyReplacedProcess  # type: ignore[misc]
