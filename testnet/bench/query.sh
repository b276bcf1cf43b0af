#!/usr/bin/env bash
# The query benchmark of issue 11: one validator and 16 miners on loopback, Agora's query
# protocol (release build) against the axon/dendrite pattern in Python (FastAPI + uvicorn
# miners, an aiohttp client, ed25519-signed headers), in the same run; prints the ratios.
# Extra arguments go to `agora bench-query` (e.g. --seconds 10 --device gpu --json).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agora/target}"
venv="${AGORA_BENCH_VENV:-$HOME/.cache/agora/bench-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import fastapi, uvicorn, aiohttp, cryptography, numpy" 2>/dev/null \
  || "$venv/bin/pip" install --quiet --disable-pip-version-check fastapi uvicorn aiohttp cryptography numpy
cargo build --release --quiet -p agora-node
"$CARGO_TARGET_DIR/release/agora" bench-query --log warn --python "$venv/bin/python" "$@"
