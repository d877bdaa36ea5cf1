"""The pure entry checks: shape, batch shape, balance per currency, posting comparison."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.kit.money import HARD_MAX_MINOR
from coffer.ledger.errors import InvalidEntry
from coffer.ledger.postings import (
    MAX_ENTRIES_PER_BATCH,
    MAX_POSTINGS_PER_ENTRY,
    MAX_REFERENCE_LENGTH,
    AccountInfo,
    EntryKind,
    EntryRequest,
    Posting,
    check_balanced,
    check_batch_shape,
    check_shape,
    same_postings,
)


def entry(
    *postings: Posting, reference: str = "ref-1", kind: Any = EntryKind.TRANSFER
) -> EntryRequest:
    return EntryRequest(kind, reference, postings)


def pair(amount: int = 100, debit: int = 1, credit: int = 2) -> tuple[Posting, Posting]:
    return Posting(debit, -amount), Posting(credit, amount)


ACCOUNTS = {
    1: AccountInfo(1, "NGN", allow_negative=False),
    2: AccountInfo(2, "NGN", allow_negative=False),
    3: AccountInfo(3, "NGN", allow_negative=True),
    10: AccountInfo(10, "USD", allow_negative=False),
    11: AccountInfo(11, "USD", allow_negative=True),
}


# --- check_shape -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EntryKind))
def test_a_two_posting_entry_of_every_kind_has_a_valid_shape(kind: EntryKind) -> None:
    check_shape(entry(*pair(), kind=kind))


def test_an_entry_may_have_up_to_the_maximum_postings() -> None:
    postings = [Posting(account, 1) for account in range(1, MAX_POSTINGS_PER_ENTRY)]
    postings.append(Posting(MAX_POSTINGS_PER_ENTRY, -(MAX_POSTINGS_PER_ENTRY - 1)))
    check_shape(entry(*postings))
    with pytest.raises(InvalidEntry, match="postings"):
        check_shape(entry(*postings, Posting(MAX_POSTINGS_PER_ENTRY + 1, 1)))


@pytest.mark.parametrize("count", [0, 1])
def test_an_entry_needs_at_least_two_postings(count: int) -> None:
    with pytest.raises(InvalidEntry, match="2 to"):
        check_shape(entry(*pair()[:count]))


@pytest.mark.parametrize("kind", ["transfer", "bogus", None, 1])
def test_a_kind_that_is_not_an_entry_kind_is_refused(kind: object) -> None:
    with pytest.raises(InvalidEntry, match="unknown entry kind"):
        check_shape(entry(*pair(), kind=kind))


def test_reference_length_is_one_to_the_maximum() -> None:
    check_shape(entry(*pair(), reference="r"))
    check_shape(entry(*pair(), reference="r" * MAX_REFERENCE_LENGTH))
    for reference in ("", "r" * (MAX_REFERENCE_LENGTH + 1)):
        with pytest.raises(InvalidEntry, match="reference"):
            check_shape(entry(*pair(), reference=reference))


@pytest.mark.parametrize("amount", [0, HARD_MAX_MINOR + 1, -HARD_MAX_MINOR - 1])
def test_a_posting_moves_a_non_zero_amount_within_range(amount: int) -> None:
    with pytest.raises(InvalidEntry, match="non-zero amount"):
        check_shape(entry(Posting(1, -amount), Posting(2, amount)))


def test_a_posting_may_move_exactly_the_hard_ceiling() -> None:
    check_shape(entry(*pair(HARD_MAX_MINOR)))


@pytest.mark.parametrize(
    "posting",
    [Posting(1, True), Posting(1, 1.0), Posting(True, 5), Posting("1", 5)],  # type: ignore[arg-type]
    ids=["bool-amount", "float-amount", "bool-account", "str-account"],
)
def test_posting_amounts_and_account_ids_must_be_ints(posting: Posting) -> None:
    with pytest.raises(InvalidEntry, match="integers"):
        check_shape(entry(posting, Posting(2, -1)))


def test_an_account_appears_once_per_entry() -> None:
    with pytest.raises(InvalidEntry, match="once per entry"):
        check_shape(entry(Posting(1, -100), Posting(2, 50), Posting(1, 50)))


# --- check_batch_shape -------------------------------------------------------------------------


def test_an_empty_batch_has_a_valid_shape() -> None:
    check_batch_shape([])


def test_a_batch_checks_the_shape_of_every_entry() -> None:
    good = entry(*pair(), reference="good")
    bad = entry(Posting(1, 0), Posting(2, 0), reference="bad")
    with pytest.raises(InvalidEntry, match="non-zero amount"):
        check_batch_shape([good, bad])


def test_a_reference_appears_once_per_batch() -> None:
    first = entry(*pair(100), reference="same")
    second = entry(*pair(200, 3, 4), reference="same")
    check_batch_shape([first, entry(*pair(200, 3, 4), reference="other")])
    with pytest.raises(InvalidEntry, match="appears twice"):
        check_batch_shape([first, second])


def test_a_batch_holds_at_most_the_maximum_entries() -> None:
    postings = pair()
    full = [entry(*postings, reference=f"r{i}") for i in range(MAX_ENTRIES_PER_BATCH)]
    check_batch_shape(full)
    with pytest.raises(InvalidEntry, match="entries per batch"):
        check_batch_shape([*full, entry(*postings, reference="one-too-many")])


# --- check_balanced ----------------------------------------------------------------------------


def test_postings_that_sum_to_zero_balance() -> None:
    check_balanced(entry(Posting(1, -300), Posting(2, 100), Posting(3, 200)), ACCOUNTS)


def test_postings_that_do_not_sum_to_zero_are_refused() -> None:
    with pytest.raises(InvalidEntry, match="does not balance") as raised:
        check_balanced(entry(Posting(1, -100), Posting(2, 99)), ACCOUNTS)
    assert "NGN" in raised.value.message


def test_an_entry_balances_in_every_currency_separately() -> None:
    # Zero overall, but NGN is +100 and USD is -100: money would be created from nothing.
    cross = entry(Posting(1, 100), Posting(10, -100))
    with pytest.raises(InvalidEntry, match="does not balance"):
        check_balanced(cross, ACCOUNTS)
    fx = entry(Posting(1, -100), Posting(3, 100), Posting(10, 80), Posting(11, -80))
    check_balanced(fx, ACCOUNTS)


@given(
    amounts=st.lists(
        st.integers(min_value=-HARD_MAX_MINOR, max_value=HARD_MAX_MINOR).filter(bool),
        min_size=1,
        max_size=MAX_POSTINGS_PER_ENTRY - 1,
    )
)
def test_closing_posting_makes_any_entry_balance(amounts: list[int]) -> None:
    accounts = {i: AccountInfo(i, "NGN", allow_negative=True) for i in range(len(amounts) + 1)}
    postings = [Posting(i, amount) for i, amount in enumerate(amounts)]
    closing = -sum(amounts)
    if closing == 0:
        with pytest.raises(InvalidEntry):
            check_balanced(entry(*postings, Posting(len(amounts), 1)), accounts)
        return
    check_balanced(entry(*postings, Posting(len(amounts), closing)), accounts)
    with pytest.raises(InvalidEntry, match="does not balance"):
        check_balanced(entry(*postings, Posting(len(amounts), closing + 1)), accounts)


# --- same_postings -----------------------------------------------------------------------------


def test_same_postings_ignores_order() -> None:
    request = entry(Posting(1, -300), Posting(2, 100), Posting(3, 200))
    stored = [Posting(3, 200), Posting(1, -300), Posting(2, 100)]
    assert same_postings(request, stored)


@pytest.mark.parametrize(
    "stored",
    [
        [Posting(1, -301), Posting(2, 301)],
        [Posting(1, -300), Posting(4, 300)],
        [Posting(2, -300), Posting(1, 300)],
        [Posting(1, -300)],
        [Posting(1, -300), Posting(2, 300), Posting(3, 0)],
        [],
    ],
    ids=["amount", "account", "direction", "missing", "extra", "empty"],
)
def test_same_postings_notices_any_difference(stored: list[Posting]) -> None:
    assert not same_postings(entry(Posting(1, -300), Posting(2, 300)), stored)


@given(
    postings=st.lists(
        st.tuples(st.integers(1, 50), st.integers(-1000, 1000)),
        min_size=2,
        max_size=MAX_POSTINGS_PER_ENTRY,
        unique_by=lambda p: p[0],
    ),
    data=st.data(),
)
def test_same_postings_holds_for_any_permutation(
    postings: list[tuple[int, int]], data: st.DataObject
) -> None:
    request = entry(*(Posting(a, m) for a, m in postings))
    shuffled = data.draw(st.permutations(postings))
    assert same_postings(request, [Posting(a, m) for a, m in shuffled])
    account, amount = shuffled[0]
    changed = [Posting(account, amount + 1), *(Posting(a, m) for a, m in shuffled[1:])]
    assert not same_postings(request, changed)
