"""SpecPrefillMiddleware: guarded import, names, construction, and the sync/async model-call wrap.

Whole agent loops through the middleware (real SmolLM2 draft, compiled graph) are in
test_langgraph.py; here the wrap is called directly with a hand-built ModelRequest.
"""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, SystemMessage
from langgraph.runtime import Runtime

import specprefill_langchain
from specprefill_langchain import SpecPrefillCompressor, SpecPrefillMiddleware
from tests.agents import TOOLS, PlannedChatModel
from tests.transcripts import agent_transcript


def _request(messages: list[Any], thread: str | None = "t-1") -> ModelRequest:
    info = SimpleNamespace(thread_id=thread)  # what ExecutionInfo carries in a graph run
    runtime = Runtime(execution_info=info)  # type: ignore[arg-type]
    return ModelRequest(
        model=PlannedChatModel(), messages=messages, system_message=SystemMessage("Be brief."), runtime=runtime
    )


class _Handler:
    """Stands in for the model call: records the request it got."""

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []

    def __call__(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return ModelResponse(result=[AIMessage("ok")])

    async def acall(self, request: ModelRequest) -> ModelResponse:
        return self(request)


# --------------------------------------------------------------------------- import guard
def test_import_without_langchain_says_how_to_install(monkeypatch):
    import importlib.metadata

    def no_langchain(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)  # as if langchain were missing
    monkeypatch.setattr(importlib.metadata, "version", no_langchain)
    monkeypatch.delitem(sys.modules, "specprefill_langchain.middleware")
    with pytest.raises(ImportError, match=r'pip install "specprefill-langchain\[agents\]"'):
        importlib.import_module("specprefill_langchain.middleware")


def test_package_imports_without_langchain_and_omits_the_middleware(monkeypatch):
    try:
        with monkeypatch.context() as m:
            m.setitem(sys.modules, "langchain.agents.middleware", None)
            m.delitem(sys.modules, "specprefill_langchain.middleware")
            pkg = importlib.reload(specprefill_langchain)  # re-runs __init__ only; submodules stay loaded
            assert "SpecPrefillMiddleware" not in pkg.__all__
            assert {"SpecPrefillCompressor", "SpecPrefillNode", "pre_model_hook"} <= set(pkg.__all__)
    finally:
        importlib.reload(specprefill_langchain)
    assert "SpecPrefillMiddleware" in specprefill_langchain.__all__


# --------------------------------------------------------------------------- construction and names
def test_built_like_the_runnable(tiny):
    mw = SpecPrefillMiddleware(draft=tiny, keep_ratio=0.2, on_error="passthrough")
    assert mw.name == "SpecPrefillMiddleware"
    assert mw.compressor.config.keep_ratio == 0.2
    assert mw.compressor.config.on_error == "passthrough"
    assert "SpecPrefillMiddleware" in repr(mw)


def test_around_an_existing_compressor(tiny):
    compressor = SpecPrefillCompressor(draft=tiny, keep_ratio=0.3)
    mw = SpecPrefillMiddleware(compressor=compressor)
    assert mw.compressor is compressor  # shares its draft and KV cache with other doors
    with pytest.raises(ValueError, match="either compressor"):
        SpecPrefillMiddleware(compressor=compressor, keep_ratio=0.5)
    with pytest.raises(TypeError, match="SpecPrefillCompressor"):
        SpecPrefillMiddleware(compressor="smollm2-135m")  # type: ignore[arg-type]


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="keep_ratio"):
        SpecPrefillMiddleware(keep_ratio=1.5)
    with pytest.raises(TypeError, match="unknown option"):
        SpecPrefillMiddleware(keep_ration=0.3)
    with pytest.raises(ValueError, match="non-empty"):
        SpecPrefillMiddleware(name=" ")


def test_names_must_be_unique_in_an_agent(tiny):
    compressor = SpecPrefillCompressor(draft=tiny)
    twins = [SpecPrefillMiddleware(compressor=compressor), SpecPrefillMiddleware(compressor=compressor)]
    with pytest.raises(AssertionError, match="duplicate middleware"):
        create_agent(PlannedChatModel(), TOOLS, middleware=twins)
    pair = [
        SpecPrefillMiddleware(compressor=compressor, name="compress-tools"),
        SpecPrefillMiddleware(compressor=compressor, name="compress-again"),
    ]
    assert [m.name for m in pair] == ["compress-tools", "compress-again"]
    create_agent(PlannedChatModel(), TOOLS, middleware=pair)  # compiles


# --------------------------------------------------------------------------- the wrap
def _check_wrap(mw: SpecPrefillMiddleware, request: ModelRequest, handler: _Handler, before: list[str]) -> None:
    (sent,) = handler.requests
    assert sent is not request  # override() made a new request ...
    assert [m.text for m in request.messages] == before  # ... and the original was not mutated
    assert sent.system_message is request.system_message  # the system prompt is never touched
    assert [m.id for m in sent.messages] == [m.id for m in request.messages]
    assert sum(len(m.text) for m in sent.messages) < 0.6 * sum(len(t) for t in before)
    stats = mw.last_stats
    assert stats is not None and not stats.passthrough and stats.cache_key == "t-1"


def test_wrap_model_call_compresses_the_request(tiny):
    mw = SpecPrefillMiddleware(draft=tiny, keep_ratio=0.3, mode="per_step")
    request, handler = _request(agent_transcript(chars=1500)[1:]), _Handler()
    before = [m.text for m in request.messages]
    response = mw.wrap_model_call(request, handler)
    assert response.result[0].text == "ok"
    _check_wrap(mw, request, handler, before)


async def test_awrap_model_call_compresses_the_request(tiny):
    mw = SpecPrefillMiddleware(draft=tiny, keep_ratio=0.3, mode="per_step")
    request, handler = _request(agent_transcript(chars=1500)[1:]), _Handler()
    before = [m.text for m in request.messages]
    response = await mw.awrap_model_call(request, handler.acall)
    assert response.result[0].text == "ok"
    _check_wrap(mw, request, handler, before)


def test_thread_id_from_run_config_when_runtime_has_none(tiny):
    from langchain_core.runnables import RunnableLambda

    mw = SpecPrefillMiddleware(draft=tiny, keep_ratio=0.3, mode="per_step")
    request, handler = _request(agent_transcript(chars=1500)[1:], thread=None), _Handler()
    # Inside a run, the middleware reads the run's config (as it does in a graph node).
    RunnableLambda(lambda _: mw.wrap_model_call(request, handler)).invoke(
        None, {"configurable": {"thread_id": "from-config"}}
    )
    assert mw.last_stats is not None and mw.last_stats.cache_key == "from-config"


# --------------------------------------------------------------------------- stable mode's state update
def test_stable_update_rides_with_the_response_and_keeps_an_inner_command(tiny):
    from langchain.agents.middleware import ExtendedModelResponse
    from langgraph.types import Command

    from specprefill_langchain import FROZEN_KEY, CompressionStats
    from specprefill_langchain.step import StepOutput

    mw = SpecPrefillMiddleware(draft=tiny)
    step = StepOutput(messages=[], update={"t1": {"digest": "d", "content": "short"}}, stats=CompressionStats())
    plain = mw._result(step, AIMessage("ok"))
    assert isinstance(plain, ExtendedModelResponse) and plain.model_response.result[0].text == "ok"
    assert plain.command.update == {FROZEN_KEY: step.update}
    inner = ExtendedModelResponse(
        model_response=ModelResponse(result=[AIMessage("ok")]), command=Command(update={"n": 1}, goto="tools")
    )
    both = mw._result(step, inner)
    assert both.command.update == {"n": 1, FROZEN_KEY: step.update}  # the inner middleware's update survives
    assert both.command.goto == "tools"  # and so does the rest of its command
    nothing = StepOutput(messages=[], update=None, stats=CompressionStats())
    assert mw._result(nothing, inner) is inner  # nothing decided: the response as it was
