"""One call over many items at once, bounded: a fleet's creates, relabels, deletes and probes take about one
item's time instead of one per item. Results come back in the items' order; the first failure is re-raised
once the others have ended (a call already sent is never abandoned half-way)."""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(func: Callable[[T], R], items: Iterable[T], limit: int, *, first_alone: bool = False) -> list[R]:
    """`func` over `items`, at most `limit` at a time. `first_alone`: the first call runs before the others
    (a client that opens its session lazily opens one, not one per thread)."""
    items = list(items)
    if len(items) <= 1:
        return [func(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # here: read-only commands never fan out

    head = [func(items[0])] if first_alone else []
    rest = items[len(head):]
    with ThreadPoolExecutor(max_workers=min(limit, len(rest))) as pool:
        return head + list(pool.map(func, rest))
