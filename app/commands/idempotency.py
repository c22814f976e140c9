"""Idempotency keys: the first result of a keyed command, stored in the command's own transaction."""

from __future__ import annotations

import json

import asyncpg

from app.commands.base import CommandResult
from app.domain.errors import ConflictError, ValidationError
from app.domain.fields import UNSTORABLE, is_storable
from app.eventstore import Position

MAX_KEY_LENGTH = 200

# Inserting the key first makes a concurrent repeat wait on this row until the first command commits
# (then it finds the result) or rolls back (then it runs the command itself).
_CLAIM = """
INSERT INTO eventstore.idempotency (actor, key, command_type) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING true
"""
_FIND = "SELECT command_type, result FROM eventstore.idempotency WHERE actor = $1 AND key = $2"
_RECORD = "UPDATE eventstore.idempotency SET result = $3::jsonb WHERE actor = $1 AND key = $2"


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError.single("idempotencyKey", f"Must be 1 to {MAX_KEY_LENGTH} characters.")
    if not is_storable(key):
        raise ValidationError.single("idempotencyKey", UNSTORABLE)


async def claim(conn: asyncpg.Connection, actor: str, key: str, command_type: str) -> CommandResult | None:
    """Take `key` for this command, or return the result of the command that took it first."""
    if await conn.fetchval(_CLAIM, actor, key, command_type):
        return None
    row = await conn.fetchrow(_FIND, actor, key)
    if row["command_type"] != command_type:
        raise ConflictError(f"This idempotency key was already used for {row['command_type']}.")
    data = json.loads(row["result"])
    return CommandResult(data["entity_id"], Position.parse(data["position"]))


async def record(conn: asyncpg.Connection, actor: str, key: str, result: CommandResult) -> None:
    data = {"entity_id": result.entity_id, "position": str(result.position)}
    await conn.execute(_RECORD, actor, key, json.dumps(data))
