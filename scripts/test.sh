#!/usr/bin/env bash
# The test command: install everything (Python and the npm client used by the compatibility
# tests), lint, check the formatting, the import contracts and the types, and run the test suite
# (everything but GPU-only tests).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh "test,miner"
if command -v npm >/dev/null 2>&1 && [ -f tests/compat/package-lock.json ]; then
  echo "==> installing @polkadot/api and polkadot-api for the compatibility tests"
  npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error
fi
if command -v npm >/dev/null 2>&1 && [ -f portal/package-lock.json ]; then
  # the staking portal's bundle (esbuild, @polkadot/api, @polkadot/extension-dapp), from its
  # pinned packages; tests/e2e/test_portal.py drives it in Chromium
  echo "==> building the staking portal (portal/dist)"
  npm ci --prefix portal --no-audit --no-fund --loglevel=error
  node portal/build.mjs
fi
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # the browser tests (RPC CORS, Polkadot.js Apps) drive Debian's Chromium (never a downloaded
  # browser); without it they skip and say so
  echo "==> installing Debian's chromium for the browser tests"
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
    || echo "    chromium could not be installed: the browser tests will skip"
fi
echo "==> ruff (lint and format)"
ruff check .
ruff format --check .
echo "==> import contracts (pyproject.toml [tool.importlinter])"
lint-imports
echo "==> mypy (strict)"
mypy chain pallets genesis node chainclient coordinator miner devnet portal_server
echo "==> pytest (everything but GPU-only tests; multi-process e2e scenarios included)"
python -m pytest -q -m "not gpu" "$@"
