"""The registry pallet; declarations live in `pallet.py`."""
