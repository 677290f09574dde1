"""What the fuzz tests share: a live gateway on an event loop of its own (hypothesis drives
synchronous tests), strategies for arbitrary JSON, and the check that an answer is documented."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support.harness import Harness, running_gateway

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]

DOCUMENTED = {202, 400, 401, 409, 413, 415, 422, 429}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@contextlib.contextmanager
def live_gateway(
    tmp: Path, prepare: Callable[[Harness], Awaitable[None]]
) -> Iterator[tuple[Harness, Runner[Any]]]:
    """A gateway on SQLite with the sandbox, `prepare`d, and a way to run coroutines on it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    context = running_gateway(f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}", tmp / "data")
    gateway = run(context.__aenter__())
    try:
        run(prepare(gateway))
        yield gateway, run
    finally:
        run(context.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def text(max_size: int) -> st.SearchStrategy[str]:
    # Any character a UTF-8 JSON body can carry (lone surrogates cannot be sent at all).
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def json_values(leaf_size: int) -> st.SearchStrategy[Any]:
    """Any JSON value, strings up to `leaf_size` characters."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | text(leaf_size),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(text(10), children, max_size=4)
        ),
        max_leaves=12,
    )


def check_answer(response: Any, *, accepted_type: str | None = None) -> None:
    """A documented status, and the documented shape: the 202 (of `accepted_type`, when given)
    or an error with a code and its list."""
    assert response.status_code in DOCUMENTED, (response.status_code, response.text)
    body = response.json()
    if response.status_code == 202:
        assert body["success"] is True and body["id"].startswith("msg_")
        if accepted_type is not None:
            assert body["type"] == accepted_type
    else:
        assert body["success"] is False
        assert isinstance(body["error"]["code"], str)
        assert isinstance(body["error"]["errors"], list)
