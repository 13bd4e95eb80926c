"""The faucet pallet; declarations live in `pallet.py`."""
