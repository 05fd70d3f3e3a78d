"""Delivery: the ledger of a run sent through the mail transport. policy.py (pure) maps an
SMTP answer to the row's next state; sender.py claims rows with a lease, sends, and records
each outcome right after its SMTP transaction."""
