"""Shared ``main`` of the atheris targets ``fuzz/fuzz_<name>.py``.

With atheris installed (``pip install atheris``; it is not a test
dependency), ``python fuzz/fuzz_sdp.py -runs=10000`` instruments ``callway``,
seeds ``fuzz/corpus/sdp/`` with the valid inputs of ``fuzz.targets.SEEDS``
(unless a corpus directory is given) and hands every other argument to
libFuzzer.  Without atheris, ``python fuzz/fuzz_sdp.py FILE...`` replays
files (e.g. a ``crash-*`` libFuzzer wrote) through the same check, so a
crash reproduces anywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"


def _seed_corpus(name: str) -> Path:
    from fuzz.targets import SEEDS

    directory = CORPUS / name
    directory.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS[name]:
        path = directory / hashlib.sha1(seed, usedforsecurity=False).hexdigest()
        if not path.exists():
            path.write_bytes(seed)
    return directory


def _replay(name: str, files: list[str]) -> int:
    from fuzz.targets import CHECKS

    check = CHECKS[name]
    for file in files:
        check(Path(file).read_bytes())
        print(f"{file}: no crash")
    return 0


def run(name: str, argv: list[str] | None = None) -> int:
    """Fuzz the ``name`` check with atheris, or replay files without it."""
    args = list(sys.argv if argv is None else argv)
    if importlib.util.find_spec("atheris") is None:
        files = [a for a in args[1:] if not a.startswith("-")]
        if files:
            return _replay(name, files)
        print("atheris is not installed: pip install atheris (see fuzz/README.md)", file=sys.stderr)
        return 2
    import atheris

    with atheris.instrument_imports(include=["callway"]):
        from fuzz.targets import CHECKS

    check = CHECKS[name]
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(_seed_corpus(name)))

    def test_one_input(data: bytes) -> None:
        check(data)

    atheris.Setup(args, test_one_input)
    atheris.Fuzz()
    return 0
