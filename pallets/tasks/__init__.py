"""The tasks pallet; declarations live in `pallet.py`."""
