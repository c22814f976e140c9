"""The GraphQL schema: every context's area composed into one Query, Mutation and Subscription."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.metrics.names import OperationNames
from app.schema.admission import admission
from app.schema.basket import BasketMutation, BasketQuery, BasketSubscription
from app.schema.catalog import CatalogMutation, CatalogQuery, CatalogSubscription
from app.schema.errors import EXCEPTION_HANDLERS, USER_ERROR_TYPES
from app.schema.execution import Executor
from app.schema.extensions import OperationLabel, PublicErrors, Schema
from app.schema.known import KnownOperations
from app.schema.notifications import NotificationsQuery
from app.schema.ordering import OrderingMutation, OrderingQuery, OrderingSubscription
from app.schema.rating import RatingMutation, RatingQuery, RatingSubscription
from app.schema.scalars import SCALARS
from app.settings import Settings

# Every context's area of the schema: a new context adds its classes here and nowhere else.
QUERIES = (CatalogQuery, BasketQuery, OrderingQuery, RatingQuery, NotificationsQuery)
MUTATIONS = (CatalogMutation, BasketMutation, OrderingMutation, RatingMutation)
SUBSCRIPTIONS = (CatalogSubscription, BasketSubscription, OrderingSubscription, RatingSubscription)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """Compose the areas into one schema with caches, a depth limit and public error formatting."""
    settings = settings or Settings()
    admissions, names = admission(settings), OperationNames()
    schema = Schema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS),
        types=USER_ERROR_TYPES,
        # In the order they run. Admission parses (cached, within limits), analyses, charges the caller and
        # validates (cached); PublicErrors hides what is not for clients; OperationLabel labels the request.
        extensions=[admissions, PublicErrors, lambda: OperationLabel(names)],
        config=StrawberryConfig(scalar_map=SCALARS),
        exception_handlers=EXCEPTION_HANDLERS,
        execution_context_class=Executor,
    )
    # The same steps, with the same gate and names, for the operations the lean path knows.
    schema.known = KnownOperations(schema, settings, admissions, names)
    return schema


__all__ = ["build_schema"]
