"""Shell progress for the import commands: a tqdm counter of records on stderr."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm import tqdm


@contextmanager
def record_progress(desc: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    bar = tqdm(desc=desc, unit=" records", file=sys.stderr, disable=not enabled, dynamic_ncols=True)

    def update(n_done: int) -> None:
        bar.update(n_done - bar.n)

    try:
        yield update
    finally:
        bar.close()
