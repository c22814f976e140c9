"""One frozen settings object, read from BOOKWORM_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".bookworm")
    host: str = "127.0.0.1"
    port: int = 8000
    # API processes `bookworm serve` runs on the one port; 0: one per core.
    api_processes: int = 0
    # How much lower than the worker's the API processes' CPU priority is (nice, 0-19): when requests
    # take every core, the relay and consumers still get theirs, so no request can stall the event flow.
    api_niceness: int = 10
    # Redis key and channel prefix: lets several deployments (or test runs) share one Redis.
    redis_prefix: str = "bookworm"
    stream_maxlen: int = 100_000
    db_pool_size: int = 10  # the API's pool, per process
    # Limits of the API's PostgreSQL connections (seconds; 0 leaves the server's setting): a statement
    # running longer is cancelled, a transaction idle longer ends its session; both answer UNAVAILABLE.
    db_statement_timeout: float = 5.0
    db_idle_in_transaction_timeout: float = 10.0
    # The workers' own pool, per process that runs them: one connection per consumer group's batch (eight),
    # the scheduler's jobs, and standby polls. Lease renewal has a connection of its own beside it.
    worker_pool_size: int = 10
    # Baskets and buyers keep a snapshot every this many events, so a command replays fewer; 0: none.
    snapshot_every: int = 100
    read_your_writes_timeout: float = 5.0
    changes_retention_days: float = 7.0
    subscriber_queue_size: int = 256
    relay_poll_interval: float = 1.0
    # After relaying a batch under load, the relay waits this long so that the commits of that time go out,
    # and every consumer group applies them, as one batch: more CPU per event when shorter, more lag when
    # longer. The first event after a quiet spell goes out at once.
    relay_gather: float = 0.025
    # Seconds to wait for Redis to connect or answer a command (longer than the consumers' 1 s XREADGROUP
    # block): past it a frozen or cut-off Redis is treated as down, and consumers catch up from PostgreSQL.
    redis_timeout: float = 5.0
    # Websocket keep-alive: a ping every interval; the connection is closed when no pong came within the
    # timeout. A subscriber that stops reading cannot answer, so the timeout is how long one may pause.
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 60.0
    lease_ttl: float = 10.0
    max_body_bytes: int = 1_000_000
    # Admission control (docs/operations.md, "Bounded cost"). Every operation is analysed before it runs.
    max_query_depth: int = 12
    max_query_tokens: int = 2_000
    max_query_aliases: int = 50
    max_query_fields: int = 500
    max_query_cost: int = 1_000
    # The size a list field without `first` is assumed to have when its cost is computed.
    list_size_estimate: int = 5
    # Budgets per client (signed-in user, else IP), shared by every API process through Redis: a bucket of
    # cost points that refills over time, and a smaller one for mutations (one point per mutation field).
    budget_capacity: int = 1_000
    budget_refill: float = 100.0
    write_budget_capacity: int = 50
    write_budget_refill: float = 5.0
    # What a `Bookworm-Position` wait costs its caller, and how many may wait at once in one process.
    position_wait_cost: int = 10
    max_position_waits: int = 1_000
    # Comma-separated addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    # Connections, per API process.
    max_requests_in_flight: int = 256
    # Each client's HTTP requests: how many run at once, and how many more wait their turn (429 past it).
    client_requests_running: int = 4
    client_requests_waiting: int = 64
    # Expensive operations (costing heavy_query_cost or more) take turns in each process: at most
    # max_running_cost points of them run at once, the rest wait in order up to heavy_query_wait seconds.
    heavy_query_cost: int = 100
    max_running_cost: int = 1_000
    heavy_query_wait: float = 10.0
    max_ws_connections: int = 10_000
    max_ws_connections_per_ip: int = 100
    max_operations_per_connection: int = 50
    max_subscriptions_per_user: int = 100
    connection_init_timeout: float = 10.0
    # Subscriptions over plain HTTP: seconds an idle stream waits before a keep-alive, so that proxies
    # do not cut it (a comment on GraphQL over SSE; an empty `{}` part on multipart subscriptions).
    sse_keep_alive: float = 15.0
    multipart_keep_alive: float = 5.0
    max_ws_message_bytes: int = 1_000_000
    # The response cache of each API process: answers of catalog queries kept until a change notice
    # makes them stale (docs/operations.md, "The response cache"). 0 entries: no cache.
    response_cache_entries: int = 4_096
    response_cache_bytes: int = 64_000_000
    response_cache_seconds: float = 60.0
    # Output and logs.
    max_response_bytes: int = 5_000_000
    max_log_value_chars: int = 200
    max_log_line_chars: int = 4_000
    # Tokens: the longest lifetime (exp - iat, or exp - now) a bearer token may have.
    max_token_lifetime: float = 86_400.0
    # Tokens each API process keeps verified until they expire, so a signature is checked once (0: none).
    verified_token_cache: int = 1_024
    # Production switches.
    graphiql: bool = True
    # GraphiQL's scripts and styles come from this server (vendored in the package), so the page works
    # offline; true loads them from their CDN (unpkg.com) instead, as strawberry's own page does.
    graphiql_cdn: bool = False
    anonymous_introspection: bool = True
    log_level: str = "INFO"
    log_format: str = "text"  # text: a line a person reads; json: one object per line (trace ids too)
    access_log: bool = False  # uvicorn's line per HTTP request
    # With traces on (OTEL_EXPORTER_OTLP_ENDPOINT): a span per statement of a query too, not only its request.
    trace_read_statements: bool = False
    # GET /metrics on the API's port (Prometheus's text format); keep it off the public internet.
    metrics: bool = True
    # Identity: HS256 with jwt_secret (the embedded default keeps one in data_dir when unset), or
    # RS256 with jwt_public_key (a PEM, or a path to one) for an external identity provider.
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Checkout saga: how long to wait for the basket's answer before re-sending (3 tries in all).
    checkout_timeout: float = 1800.0
    checkout_attempts: int = 3
    # Mail: sent by SMTP when smtp_host is set, else written to the log.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Bookworm <no-reply@bookworm.local>"
    mail_retention_days: float = 30.0
    trust_unverified_email: bool = False  # mail addresses lacking email_verified (IdP checks all)
    max_mails_per_customer_per_hour: int = 10  # past it a customer's mails are skipped, not queued

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from BOOKWORM_* variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        defaults = cls()

        def get(name: str) -> str | None:
            value = env.get(f"BOOKWORM_{name.upper()}")
            return value if value not in (None, "") else None

        values: dict[str, object] = {}
        for field_name, current in vars(defaults).items():
            raw = get(field_name)
            if raw is None:
                continue
            if isinstance(current, bool):
                values[field_name] = _bool(raw)
            elif isinstance(current, int):
                values[field_name] = int(raw)
            elif isinstance(current, float):
                values[field_name] = float(raw)
            elif isinstance(current, Path):
                values[field_name] = Path(raw)
            else:
                values[field_name] = raw
        # database_url / redis_url default to None, so they land in the str branch above.
        return replace(defaults, **values)  # type: ignore[arg-type]

    @property
    def events_stream(self) -> str:
        return f"{self.redis_prefix}:events"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.redis_prefix}:deadletters"

    def changes_channel(self, topic: str) -> str:
        return f"{self.redis_prefix}:changes:{topic}"
