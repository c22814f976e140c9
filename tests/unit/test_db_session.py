"""What a pool's session tells PostgreSQL when a connection starts: a name and the limits set."""

from __future__ import annotations

from dataclasses import replace

from app.db import API_APPLICATION, WORKER_APPLICATION, Session, api_session, worker_session
from app.settings import Settings


def test_the_api_session_sends_its_name_and_limits_in_milliseconds() -> None:
    settings = replace(Settings(), db_statement_timeout=5.0, db_idle_in_transaction_timeout=0.25)
    assert api_session(settings).server_settings() == {
        "application_name": API_APPLICATION,
        "statement_timeout": "5000",
        "idle_in_transaction_session_timeout": "250",
    }


def test_a_limit_of_zero_leaves_the_servers_setting() -> None:
    settings = replace(Settings(), db_statement_timeout=0.0, db_idle_in_transaction_timeout=0.0)
    assert api_session(settings).server_settings() == {"application_name": API_APPLICATION}
    assert worker_session().server_settings() == {"application_name": WORKER_APPLICATION}


def test_neither_the_api_nor_the_workers_pay_a_session_reset_per_release() -> None:
    assert not api_session(Settings()).holds_session_state
    assert not worker_session().holds_session_state
    assert Session().holds_session_state


def test_a_tiny_limit_is_one_millisecond_not_none() -> None:
    assert Session(statement_timeout=0.0001).server_settings()["statement_timeout"] == "1"


def test_the_defaults_are_read_from_the_environment() -> None:
    env = {"BOOKWORM_DB_STATEMENT_TIMEOUT": "2.5", "BOOKWORM_DB_IDLE_IN_TRANSACTION_TIMEOUT": "7"}
    settings = Settings.from_env(env)
    assert (settings.db_statement_timeout, settings.db_idle_in_transaction_timeout) == (2.5, 7.0)
    assert (Settings().db_statement_timeout, Settings().db_idle_in_transaction_timeout) == (5.0, 10.0)
