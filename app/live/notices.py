"""Change notices: what a projection commit announces, and the topics they go to."""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.eventstore.position import Position

# Topics: every context's names of what a subscriber may follow, here and nowhere else.
CATALOG_TOPIC = "catalog"


def topic_kind(topic: str) -> str:
    """What a topic follows, without the id it may name (`book` for `book:<id>`): a small, fixed set."""
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


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangeNotice:
    """One read-model change: written to read.changes and published after commit."""

    position: Position
    topic: str
    kind: str  # CREATED | UPDATED | DELETED
    entity: str  # Book | Author | Category | Publisher | ...
    entity_id: str

    def to_json(self) -> str:
        return json.dumps(
            {"p": str(self.position), "t": self.topic, "k": self.kind, "e": self.entity, "i": self.entity_id}
        )

    @classmethod
    def from_json(cls, raw: str) -> ChangeNotice:
        data = json.loads(raw)
        return cls(
            position=Position.parse(data["p"]),
            topic=data["t"],
            kind=data["k"],
            entity=data["e"],
            entity_id=data["i"],
        )
