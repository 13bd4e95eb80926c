"""The randomness pallet; declarations live in `pallet.py`."""
