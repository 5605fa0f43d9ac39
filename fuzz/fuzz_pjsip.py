"""atheris target: the pjsip.conf parser (only ConfigError).

Run: ``python fuzz/fuzz_pjsip.py -runs=10000`` (see fuzz/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz._atheris import run

if __name__ == "__main__":
    sys.exit(run("pjsip"))
