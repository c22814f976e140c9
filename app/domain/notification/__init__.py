"""The notification context: the mails customers receive about their orders."""
