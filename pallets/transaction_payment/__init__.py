"""The transaction_payment pallet; declarations live in `pallet.py`."""
