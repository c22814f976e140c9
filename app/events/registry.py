"""Event type names <-> classes, schema versions, upcasters, and the JSON codec."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from app.events.base import Event

E = TypeVar("E", bound=type[Event])
T = TypeVar("T")
Data = dict[str, Any]
Upcaster = Callable[[Data], Data]


class UnknownEventType(LookupError):
    """A stored event type that no registered class answers to."""


@dataclasses.dataclass(frozen=True)
class EventType:
    name: str
    version: int
    cls: type[Event]


class EventRegistry:
    """Maps type names to classes and upgrades old payloads on read (v1 -> v2 -> ...)."""

    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_class: dict[type[Event], EventType] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def event(self, name: str, *, version: int = 1) -> Callable[[E], E]:
        """Register an event class under a stable type name and its current schema version."""

        def register(cls: E) -> E:
            if name in self._by_name:
                raise ValueError(f"event type {name} is registered twice")
            entry = EventType(name, version, cls)
            self._by_name[name] = entry
            self._by_class[cls] = entry
            return cls

        return register

    def upcaster(self, name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns a payload of `from_version` into `from_version + 1`."""

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[(name, from_version)] = fn
            return fn

        return register

    def upcaster_doc(self, name: str, from_version: int) -> str:
        step = self._upcasters.get((name, from_version))
        return (step.__doc__ or "").strip() if step else "missing"

    def type_of(self, event: Event) -> EventType:
        return self._by_class[type(event)]

    def get(self, name: str) -> EventType:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(name) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def upcast(self, name: str, schema_version: int, data: Data) -> Data:
        """Bring a stored payload up to the registered schema version."""
        current = self.get(name).version
        while schema_version < current:
            step = self._upcasters.get((name, schema_version))
            if step is None:
                raise UnknownEventType(f"{name} has no upcaster from v{schema_version}")
            data = step(dict(data))
            schema_version += 1
        return data

    def encode(self, event: Event) -> tuple[str, int, Data]:
        entry = self.type_of(event)
        return entry.name, entry.version, to_json(event)

    def decode(self, name: str, schema_version: int, data: Data) -> Event:
        entry = self.get(name)
        return from_json(entry.cls, self.upcast(name, schema_version, data))


# Values an event holds that are their own JSON: by exact type (a str subclass, an enum, takes the long way).
_AS_IS = frozenset({str, int, bool, type(None)})
_field_names: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _names(type(value))}
    return value


def _names(cls: type) -> tuple[str, ...]:
    """The field names of dataclass `cls`, looked up once (dataclasses.fields builds a tuple each call)."""
    names = _field_names.get(cls)
    if names is None:
        names = _field_names[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_json(event: Event) -> Data:
    return {name: _plain(getattr(event, name)) for name in _names(type(event))}


Convert = Callable[[Any], Any]


def _converter(annotation: Any) -> Convert | None:
    """Return what turns a JSON value into a field of type `annotation`, or None when it is the value
    itself (str, int, bool). None stays None whatever the annotation."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _converter(inner[0])
    if origin is tuple:
        (item, *_rest) = typing.get_args(annotation)
        convert = _converter(item)
        if convert is None:
            return tuple
        return lambda values: tuple(v if v is None else convert(v) for v in values)
    if annotation is Decimal:
        return lambda value: Decimal(str(value))
    if annotation is dt.datetime:
        return dt.datetime.fromisoformat
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _decoder(annotation)
    return None


_decoders: dict[type, Callable[[Data], Any]] = {}


def _decoder(cls: type[T]) -> Callable[[Data], T]:
    """Return the function that builds dataclass `cls` from its JSON form, made once per class (a
    rebuild decodes every event it applies)."""
    decode = _decoders.get(cls)
    if decode is None:
        decode = _decoders[cls] = _make_decoder(cls)
    return decode


def _make_decoder(cls: type[T]) -> Callable[[Data], T]:
    hints = typing.get_type_hints(cls)
    converters = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def decode(data: Data) -> T:
        fields = {}
        for name, value in data.items():
            if name in converters:  # a key of no field (one a newer schema dropped) is ignored
                convert = converters[name]
                fields[name] = value if convert is None or value is None else convert(value)
        return cls(**fields)

    return decode


def from_json(cls: type[Event], data: Data) -> Event:
    return _decoder(cls)(data)


REGISTRY = EventRegistry()
