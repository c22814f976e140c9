"""Order mails: the mailer port and its adapters, and the sender that drains the outbox.

The consumer that fills the outbox is a process manager (`app.processes.notification_outbox`);
this package is what it feeds: an outbound port with two adapters and a background job.
"""
