#!/usr/bin/env bash
# Install Bounce into a virtual environment and run the bot (settings from the environment or .env).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BOUNCE_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e .
exec "$VENV/bin/python" bot.py
