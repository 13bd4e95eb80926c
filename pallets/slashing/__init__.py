"""The slashing pallet; declarations live in `pallet.py`."""
