# Sourced by scripts/dev.sh and scripts/test.sh: from the repository root, create .venv if it
# is missing (with $PYTHON, default python3), activate it and install cuckoo-chain in editable
# mode with the extras named in $1 (e.g. "miner" or "test,miner").
#   . scripts/env.sh EXTRAS
cuckoo_extras=$1
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
echo "==> installing cuckoo-chain with the extras [$cuckoo_extras] (torch CPU build, diffusers)"
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e ".[$cuckoo_extras]"
unset cuckoo_extras
