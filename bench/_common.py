"""What the benchmark scripts share: their scratch directory.

Not a benchmark itself; the scripts import it next to each other
(``sys.path`` holds ``bench/``).
"""

from __future__ import annotations

import contextlib
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
