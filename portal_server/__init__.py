"""`cuckoo-portal`: serves the staking portal (the web app in `portal/`) for a chain node.

The app itself runs in the browser and talks to the node's JSON-RPC directly; this package only
builds its bundle from the pinned npm packages (`portal/package-lock.json`) and serves the static
files plus `config.json`, which names the node. It imports nothing of the chain.
"""
