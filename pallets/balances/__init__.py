"""The balances pallet; declarations live in `pallet.py`."""
