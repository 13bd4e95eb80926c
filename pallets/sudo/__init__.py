"""The sudo pallet; declarations live in `pallet.py`."""
