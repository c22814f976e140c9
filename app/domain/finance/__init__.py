"""The finance context: the checkout saga that turns a placed order into a checked-out basket."""
