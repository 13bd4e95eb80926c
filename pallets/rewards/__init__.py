"""The rewards pallet; declarations live in `pallet.py`."""
