"""What the benchmark scripts share: their scratch directory, cProfile reports.

Not a benchmark itself; the scripts import it next to each other
(``sys.path`` holds ``bench/``).
"""

from __future__ import annotations

import contextlib
import io
import pstats
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def workdir(name: str, keep: bool) -> Iterator[Path]:
    """A fresh ``/tmp/bench-NAME-*`` directory for one run; removed at the end unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def profile_report(path: Path, what: str, limit: int = 25) -> None:
    """Print the ``limit`` costliest functions of a cProfile dump, by own and by cumulative time."""
    if not path.exists():
        print(f"  no profile written at {path}")
        return
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(limit)
        print(f"\n--- cProfile of {what}, by {order} ---")
        print("\n".join(out.getvalue().splitlines()[4:]))
