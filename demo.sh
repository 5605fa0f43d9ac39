#!/usr/bin/env bash
# Starts callway on its embedded defaults (the seed's demo: 8005/8006, password = user).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
exec .venv/bin/callway demo "$@"
