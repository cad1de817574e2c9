"""Notifications to requesters: an email when an export finishes (`email.py`), sent to `recipients.py`'s
address."""
