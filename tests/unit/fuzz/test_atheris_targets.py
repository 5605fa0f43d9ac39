"""The atheris targets under ``fuzz/``: one per parser check, each runnable without atheris.

atheris is not a test dependency; without it a target replays the files it
is given through the same check (how a ``crash-*`` reproduces anywhere).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fuzz._atheris import run
from fuzz.targets import CHECKS, SEEDS

FUZZ_DIR = Path(__file__).resolve().parents[3] / "fuzz"


def test_one_target_per_check() -> None:
    targets = {p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.py")}
    assert targets == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_target_runs_its_check(name: str) -> None:
    tree = ast.parse((FUZZ_DIR / f"fuzz_{name}.py").read_text())
    calls = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id == "run" and isinstance(node.args[0], ast.Constant)
    ]  # fmt: skip
    assert calls == [name]


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_replay_without_atheris(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda module, *a: None)
    files = []
    for index, seed in enumerate(SEEDS[name]):
        path = tmp_path / f"seed-{index}"
        path.write_bytes(seed)
        files.append(str(path))
    assert run(name, [f"fuzz_{name}.py", *files]) == 0
    assert capsys.readouterr().out.count("no crash") == len(files)
