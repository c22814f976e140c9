"""Idempotency keys: the first result of a keyed command, stored in the command's write transaction.

With the key goes a fingerprint of the request, so that the same key sent with another request is
refused instead of answered with a result for a write that never happened.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from decimal import Decimal

import asyncpg

from app.commands.results import CommandResult
from app.domain.commands import Command
from app.domain.errors import KeyReusedError, ValidationError
from app.domain.fields import UNSTORABLE, is_storable
from app.eventstore import Position

MAX_KEY_LENGTH = 200

# Inserting the key first in the write transaction makes a concurrent repeat wait on this row until the
# first command commits (then it finds the result) or rolls back (then it writes what it decided).
_CLAIM = """
INSERT INTO eventstore.idempotency (actor, key, command_type, fingerprint) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING RETURNING true
"""
_FIND = "SELECT command_type, fingerprint, result FROM eventstore.idempotency WHERE actor = $1 AND key = $2"
_RECORD = "UPDATE eventstore.idempotency SET result = $3::jsonb WHERE actor = $1 AND key = $2"


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError.single("idempotencyKey", f"Must be 1 to {MAX_KEY_LENGTH} characters long.")
    if not is_storable(key):
        raise ValidationError.single("idempotencyKey", UNSTORABLE)


def fingerprint(command: Command) -> str:
    """Return the sha256 hex of the command's type and the fields its caller chose, as canonical JSON."""
    chosen = {
        field.name: getattr(command, field.name)
        for field in dataclasses.fields(command)
        if field.name not in command.minted
    }
    request = {"type": type(command).__name__, "fields": chosen}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value.normalize())  # 12.5 and 12.50 are one price
    if isinstance(value, enum.Enum):
        return value.name
    raise TypeError(f"no canonical form for {type(value).__name__}")


async def find(conn: asyncpg.Connection, actor: str, key: str, command: Command) -> CommandResult | None:
    """Return the result of the same request stored under `key`; None when the key is free.

    Raise KeyReusedError when a different request took the key. A command asks before it decides, so
    a repeat is answered without replaying anything.
    """
    row = await conn.fetchrow(_FIND, actor, key)
    return None if row is None or row["result"] is None else _earlier(row, command)


async def claim(conn: asyncpg.Connection, actor: str, key: str, command: Command) -> CommandResult | None:
    """Take `key` for this command, or return the result of the same request that took it first.

    Raise KeyReusedError when the key was taken by a different request. Keys stored before fingerprints
    existed have none and match any request of their command type.
    """
    if await conn.fetchval(_CLAIM, actor, key, type(command).__name__, fingerprint(command)):
        return None
    return _earlier(await conn.fetchrow(_FIND, actor, key), command)


def _earlier(row: asyncpg.Record, command: Command) -> CommandResult:
    same_type = row["command_type"] == type(command).__name__
    if not same_type or row["fingerprint"] not in (None, fingerprint(command)):
        raise KeyReusedError()
    data = json.loads(row["result"])
    return CommandResult(data["entity_id"], Position.parse(data["position"]))


async def record(conn: asyncpg.Connection, actor: str, key: str, result: CommandResult) -> None:
    data = {"entity_id": result.entity_id, "position": str(result.position)}
    await conn.execute(_RECORD, actor, key, json.dumps(data))
