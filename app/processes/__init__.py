"""Process managers: consumers that react to events with commands or side effects, never a read model.

Each is a consumer group with its own checkpoint, and does its work inside the batch transaction:

- `basket_checkout`: CheckoutRequested -> CheckoutBasket (the basket's side of checkout).
- `checkout_saga`: the checkout saga's state per order, its steps and its timeout.
- `feedback_check`: feedback on a book that does not exist is removed again.
- `notification_outbox`: order events -> mails queued in the outbox (sent by `app.notifications`).
"""
