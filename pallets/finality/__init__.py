"""The finality pallet; declarations live in `pallet.py`."""
