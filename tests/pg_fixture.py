"""A real PostgreSQL server for the tests that need one: one throwaway cluster per test session.

Re-export from conftest.py (``from tests.pg_fixture import postgres_url``) or import it into a test
module. The fixture yields a connection URL whose checkpoint tables are set up. With
``SPECPREFILL_POSTGRES_URL`` set (a CI service container, a developer's server) it uses that server
instead of starting one; tests must then use thread ids of their own (they do: uuid suffixes).
Without the PostgreSQL server binaries the tests skip and say what to install, except where
``SPECPREFILL_REQUIRE_POSTGRES`` is set (``.ci/run`` sets it): there they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

URL_ENV = "SPECPREFILL_POSTGRES_URL"
REQUIRE_ENV = "SPECPREFILL_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server for this session, its LangGraph checkpoint tables created."""
    pytest.importorskip(
        "langgraph.checkpoint.postgres",
        reason='needs pip install "langgraph-checkpoint-postgres>=3,<4" "psycopg[binary]>=3.2"',
    )
    from langgraph.checkpoint.postgres import PostgresSaver

    from specprefill_langchain.bench.pgserver import PostgresNotFoundError, ThrowawayPostgres

    given = os.environ.get(URL_ENV)
    if given:
        with PostgresSaver.from_conn_string(given) as saver:
            saver.setup()
        yield given
        return
    try:
        server = ThrowawayPostgres().start()
    except PostgresNotFoundError as exc:
        if os.environ.get(REQUIRE_ENV):  # CI (.ci/run) sets it: there, a missing server is a failure
            pytest.fail(f"{exc}; {REQUIRE_ENV} is set, so the PostgreSQL tests must run")
        pytest.skip(f"{exc} (or set {URL_ENV} to a server's URL)")
    try:
        with PostgresSaver.from_conn_string(server.url) as saver:
            saver.setup()
        yield server.url
    finally:
        server.stop()
