"""The timestamp pallet; declarations live in `pallet.py`."""
