"""`cuckoo-devnet`: the whole network on one machine (see cli.py)."""
