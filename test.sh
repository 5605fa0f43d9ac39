#!/usr/bin/env bash
# The whole test suite: installs what it needs, then ruff, mypy --strict, pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check src tests bench
echo "== mypy --strict"; mypy --strict
echo "== pytest"; exec pytest "$@"
