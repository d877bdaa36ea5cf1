"""Consuming the sender's daily transfer allowance at intake (given back if settlement fails)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.transfers.replay import Outcomes, answer_from_stored
from coffer.transfers.requests import Candidate
from coffer.wallets import limits


async def consume(
    session: AsyncSession, candidates: list[Candidate], outcomes: Outcomes
) -> list[Candidate]:
    """Consume each sender's daily allowance; the requests that would exceed it are refused."""
    claimed = [(c, c.allowance) for c in candidates if c.allowance is not None]
    granted = await limits.consume(session, [allowance for _, allowance in claimed])
    within: list[Candidate] = []
    refused: list[Candidate] = []
    for (candidate, (claim, limit_minor)), fits in zip(claimed, granted, strict=True):
        if fits:
            within.append(candidate)
        else:
            outcomes[candidate.index] = limits.exceeded(claim, limit_minor)
            refused.append(candidate)
    # A retry that arrived while its original was in flight waited on the usage row and
    # found the allowance spent by that very original: answer it as the replay it is.
    await answer_from_stored(session, refused, outcomes)
    return within


async def give_back(session: AsyncSession, candidates: list[Candidate]) -> None:
    """Return the allowance of requests that consumed it but will not be stored."""
    await limits.release(session, [c.allowance[0] for c in candidates if c.allowance is not None])
