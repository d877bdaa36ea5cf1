"""A cap on concurrent holders per key within one process (requests that wait, holding a
coroutine and a client connection each)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.exceptions import HTTPException


class ConcurrencyCap:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    @contextmanager
    def slot(self, key: str) -> Iterator[None]:
        """Hold one of `key`'s slots; 429 `rate_limited` (Retry-After: 1) when all are held.
        Check and take happen with no await between, so the event loop cannot interleave."""
        if self._held[key] >= self.limit:
            raise HTTPException(
                status_code=429,
                detail=f"At most {self.limit} requests may wait at once; retry later",
                headers={"Retry-After": "1"},
            )
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
