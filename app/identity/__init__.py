"""Who is calling: the principal an identity token names, and the roles it grants."""

from app.identity.principal import ADMIN, ANONYMOUS, CUSTOMER, Principal

__all__ = ["ADMIN", "ANONYMOUS", "CUSTOMER", "Principal"]
