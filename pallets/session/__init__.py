"""The session pallet; declarations live in `pallet.py`."""
