"""Which queries the response cache may answer (app/queries/response_cache.py holds the answers).

A query may be kept when every field it names is one of CACHEABLE's (never a mutation, a subscription
or introspection): those fields read only the catalog read model, through the tagged reads of
app/queries/catalog.py, and nothing in them depends on who asks beyond their roles. The view keys an
answer by the request as sent (method, content type, body or query string) and the caller's roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphql import DocumentNode, GraphQLSchema, TypeInfo, TypeInfoVisitor, Visitor, visit
from graphql.language import FieldNode

from app.admission.memo import ByIdentity

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from app.queries.response_cache import Reading

# The scope entry of the request's Reading, when its answer may be kept: a dict read, where
# request.state would raise (and catch) AttributeError for every request that has none.
READING_KEY = "bookworm.reading"

_BOOK = {"id", "name", "description", "price", "priceSale", "status", "averageRating", "totalReviews"}
_BOOK |= {"version", "createdAt", "updatedAt", "category", "publisher", "authors"}
_PAGE_INFO = {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}

# Fields whose answers may be kept: (type, field). A field added to one of these types is not cacheable
# until it is added here, after checking it reads only tagged catalog rows (app/queries/catalog.py).
CACHEABLE: frozenset[tuple[str, str]] = frozenset(
    [("Query", f) for f in ("book", "books", "author", "authors", "categories", "publishers")]
    + [("Book", f) for f in _BOOK]
    + [("Author", f) for f in ("id", "name", "books")]
    + [("Category", f) for f in ("id", "name", "bookCount")]
    + [("Publisher", f) for f in ("id", "name")]
    + [(c, f) for c in ("BookConnection", "AuthorConnection") for f in ("edges", "pageInfo", "totalCount")]
    + [(e, f) for e in ("BookEdge", "AuthorEdge") for f in ("cursor", "node")]
    + [("PageInfo", f) for f in _PAGE_INFO]
)


class _Fields(Visitor):
    """Finds whether every field of a document is cacheable (fragments and all operations included)."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.cacheable = True

    def enter_field(self, node: FieldNode, *_: object) -> object:
        parent = self.type_info.get_parent_type()
        name = node.name.value
        if name != "__typename" and (parent is None or (parent.name, name) not in CACHEABLE):
            self.cacheable = False
            return self.BREAK
        return None


_cacheable_documents: ByIdentity[bool] = ByIdentity()


def cacheable(schema: GraphQLSchema, document: DocumentNode) -> bool:
    """Whether every field the document names is one whose answer may be kept; once per document."""
    key = (schema, document)
    known = _cacheable_documents.find(key)
    if known is None:
        type_info = TypeInfo(schema)
        fields = _Fields(type_info)
        visit(document, TypeInfoVisitor(type_info, fields))
        known = fields.cacheable
        _cacheable_documents.put(key, known)
    return known


def reading_of(request: HTTPConnection) -> Reading | None:
    """The response cache's record of `request`'s read, when its answer may be kept."""
    reading: Reading | None = request.scope.get(READING_KEY)
    return reading
