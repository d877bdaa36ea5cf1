"""uvicorn's multi-process supervisor, told at once when an API process dies, and patient with
one that is still booting.

Found by `coffer check bank`: a SIGKILLed API process was replaced only ~60 s later. The
supervisor pings each child over a pipe and waits up to `timeout_worker_healthcheck` (60 s, see
coffer serve) for the answer; it also kept its own copy of the child's end of that pipe, so a
child that died mid-ping never closed the pipe and the wait ran to the timeout, with one API
process fewer meanwhile. Closing the parent's copy once the child has its own makes a dead
child's pipe read as end-of-file: the ping fails at once and the child is replaced.

Found by it again on a loaded machine (load 15 on 2 CPUs): a replacement needs more than the
60 s to import coffer before its answering thread starts, so the supervisor killed it as hung
and spawned another, which met the same fate, over and over, with one API process fewer for
minutes. A child that has never answered is given BOOT_ALLOWANCE_SECONDS instead, polled
briefly each round so the other children are still checked every half second; once it has
answered, uvicorn's own healthcheck applies. A dead child is still replaced at once.
"""

from __future__ import annotations

import pickle
import time

from uvicorn.supervisors import multiprocess

BOOT_ALLOWANCE_SECONDS = 600.0
"""How long a new API process may take to answer its first ping before it counts as hung."""
BOOT_POLL_SECONDS = 0.2


class PromptlyReplacedProcess(multiprocess.Process):
    def start(self) -> None:
        super().start()
        # The child received its own copy of this end when it was spawned.
        self.child_conn.close()
        self._started_at = time.monotonic()
        self._booted = False
        self._boot_ping_sent = False

    def is_alive(self, timeout: float = 5) -> bool:
        if self._booted:
            return super().is_alive(timeout)
        if not self.process.is_alive():
            return False
        try:
            # One ping, answered once the child's thread runs: pings sent meanwhile would be
            # answered later as stale pongs that vouch for a child after it hangs.
            if not self._boot_ping_sent:
                self.parent_conn.send(b"ping")
                self._boot_ping_sent = True
            if self.parent_conn.poll(BOOT_POLL_SECONDS):
                self.parent_conn.recv()
                self._booted = True
                return True
        except (OSError, EOFError, pickle.UnpicklingError):
            return False
        return time.monotonic() - self._started_at < BOOT_ALLOWANCE_SECONDS


def use_prompt_replacement() -> None:
    """Make uvicorn's supervisor start its children as PromptlyReplacedProcess."""
    multiprocess.Process = PromptlyReplacedProcess  # type: ignore[misc]
