#!/usr/bin/env bash
# The main job: install everything, start a fresh single-validator dev chain and show a signed
# transfer landing and finalizing through the real substrate-interface client.
#   bash scripts/dev.sh           run the demo, then keep the node running until Ctrl-C
#   bash scripts/dev.sh --once    run the demo and stop
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
RPC_PORT=${RPC_PORT:-9944}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
echo "==> installing cuckoo-chain and its dependencies"
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e .
exec python scripts/demo.py --rpc-port "$RPC_PORT" "$@"
