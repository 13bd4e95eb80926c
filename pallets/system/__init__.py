"""The system pallet; declarations live in `pallet.py`."""
