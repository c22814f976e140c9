"""Change notices: what a projection commit announces, and the topics they go to."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from app.eventstore.position import Position

# Topics: every context's names of what a subscriber may follow, here and nowhere else.
CATALOG_TOPIC = "catalog"


def topic_kind(topic: str) -> str:
    """What a topic (or a pattern) follows, without the id it may name (`book` for `book:<id>`)."""
    return topic.partition(":")[0]


def book_topic(book_id: str) -> str:
    return f"book:{book_id}"


def basket_topic(customer_id: str) -> str:
    return f"basket:{customer_id}"


def order_topic(order_id: str) -> str:
    return f"order:{order_id}"


def buyer_orders_topic(buyer_id: str) -> str:
    return f"buyer-orders:{buyer_id}"


def feedback_topic(book_id: str) -> str:
    return f"feedback:{book_id}"


# A topic as code names it: a fixed one (CATALOG_TOPIC), or the function of an id that builds one.
TopicOf = str | Callable[[str], str]


def pattern(topic: TopicOf) -> str:
    """Return a topic as the docs write it: `catalog` as it is, `book_topic` as `book:{book_id}`."""
    if isinstance(topic, str):
        return topic
    (parameter,) = inspect.signature(topic).parameters
    return topic(f"{{{parameter}}}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangeNotice:
    """One read-model change: written to read.changes and published after commit."""

    position: Position
    topic: str
    kind: str  # CREATED | UPDATED | DELETED
    entity: str  # Book | Author | Category | Publisher | ...
    entity_id: str
    # The W3C traceparent of its publish, when traced: not part of the change, so not compared.
    traceparent: str | None = field(default=None, compare=False)

    def to_json(self) -> str:
        fields = {"p": str(self.position), "t": self.topic, "k": self.kind, "e": self.entity}
        fields["i"] = self.entity_id
        if self.traceparent is not None:
            fields["tp"] = self.traceparent  # optional: readers from before traces ignore it
        return json.dumps(fields)

    @classmethod
    def from_json(cls, raw: str) -> ChangeNotice:
        data = json.loads(raw)
        return cls(
            position=Position.parse(data["p"]),
            topic=data["t"],
            kind=data["k"],
            entity=data["e"],
            entity_id=data["i"],
            traceparent=data.get("tp"),
        )
