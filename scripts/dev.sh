#!/usr/bin/env bash
# The main job: install everything and run the whole network on this machine (`cuckoo-devnet`):
# a dev chain node, a registered coordinator and miner (tiny diffusers model), a voter, and a
# demo prompt whose image and on-chain receipt are printed.
#   bash scripts/dev.sh           run the demo, then keep the network running until Ctrl-C
#   bash scripts/dev.sh --once    run the demo and stop
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh "miner"
exec cuckoo-devnet "$@"
