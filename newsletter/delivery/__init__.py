"""Delivery: the ledger of a run sent through the mail transport. sender.py claims rows
with a lease, sends, and records each outcome right after its SMTP transaction, deciding by
newsletter.mail.policy (pure)."""
