"""The staking pallet; declarations live in `pallet.py`."""
