"""Order mails: the outbox consumer, the mailer port and its adapters, and the sender.

A package beside the layers rather than inside them: it is one small context whose parts are
an event consumer that is not a projection, an outbound port with two adapters, and a background
job; splitting those over `commands/`, `projections/` and `bus/` would scatter it without a gain.
"""
