"""Library code must leave the caller's matplotlib backend alone (a notebook's, say)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib


@contextmanager
def foreign_backend(name: str = "svg") -> Iterator[None]:
    """Run the block under the ``name`` backend; fail if the block switches it."""
    previous = matplotlib.get_backend()
    matplotlib.use(name)
    try:
        yield
        assert matplotlib.get_backend() == name, (
            f"the caller's backend {name!r} was switched to {matplotlib.get_backend()!r}"
        )
    finally:
        matplotlib.use(previous)
