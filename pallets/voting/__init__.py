"""The voting pallet; declarations live in `pallet.py`."""
