"""The aura pallet; declarations live in `pallet.py`."""
