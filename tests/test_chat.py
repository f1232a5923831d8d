"""LocalChatModel on the real Qwen2.5-Coder-0.5B target, plus the tool-call parser on its own."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from specprefill_langchain import models
from specprefill_langchain.bench.target import LocalChatModel, parse_tool_calls

QUESTION = "What is the capital of France? Answer with one word."
READ_PROMPT = "Read the file config.yaml using the read_file tool."
# Without it the 0.5B model answers in a ```json fence (also parsed, but ~30 tokens, over our budget of 24).
TOOL_SYSTEM = "Call tools by replying with a <tool_call></tool_call> block only."
TOOL_TURN = [SystemMessage(TOOL_SYSTEM), HumanMessage(READ_PROMPT)]


@tool
def read_file(path: str) -> str:
    """Read a text file from disk and return its contents."""
    return f"contents of {path}: debug: true"


@pytest.fixture(scope="module")
def chat() -> LocalChatModel:
    try:
        models.resolve("qwen2.5-coder-0.5b", progress=False)
    except models.ModelNotInstalledError as exc:
        pytest.skip(str(exc))
    model = LocalChatModel(max_new_tokens=24)
    model.tokenizer  # noqa: B018  (loads the shared weights once for the whole module)
    return model


# --- the parser, no model -------------------------------------------------------------------------


def test_parse_single_call_keeps_surrounding_text() -> None:
    text = 'Let me look.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>'
    content, calls, invalid = parse_tool_calls(text)
    assert content == "Let me look."
    assert [(c["name"], c["args"]) for c in calls] == [("read_file", {"path": "a.py"})]
    assert calls[0]["id"].startswith("call_") and invalid == []


def test_parse_several_calls_get_unique_ids() -> None:
    block = '<tool_call>\n{{"name": "read_file", "arguments": {{"path": "{}"}}}}\n</tool_call>'
    content, calls, invalid = parse_tool_calls("\n".join(block.format(p) for p in ("a", "b", "c")))
    assert content == "" and invalid == []
    assert [c["args"]["path"] for c in calls] == ["a", "b", "c"]
    assert len({c["id"] for c in calls}) == 3


def test_parse_invalid_json_and_cut_off_block_become_invalid_calls() -> None:
    text = (
        '<tool_call>\n{"name": "ok", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "broken", "arguments": {x: 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "cut", "argum'
    )
    content, calls, invalid = parse_tool_calls(text)
    assert content == ""
    assert [c["name"] for c in calls] == ["ok"]
    assert [c["name"] for c in invalid] == ["broken", "cut"]
    assert all(c["error"] and c["id"].startswith("call_") for c in invalid)
    assert invalid[0]["args"] == '{"name": "broken", "arguments": {x: 1}}'


def test_parse_fenced_json_counts_only_for_bound_tools() -> None:
    fenced = '```json\n{"name": "read_file", "arguments": {"path": "x"}}\n```'
    assert parse_tool_calls(fenced)[0] == fenced  # no tools bound: just text
    content, calls, _ = parse_tool_calls(fenced, ["read_file"])
    assert content == "" and calls[0]["args"] == {"path": "x"}
    assert parse_tool_calls(fenced, ["other_tool"])[1] == []
    prose = 'Here is JSON: {"name": "read_file", "arguments": {}}'
    assert parse_tool_calls(prose, ["read_file"]) == (prose, [], [])


def test_bind_tools_rejects_unknown_tool_choice() -> None:
    with pytest.raises(ValueError, match="names no bound tool"):
        LocalChatModel().bind_tools([read_file], tool_choice="write_file")


# --- the real model ------------------------------------------------------------------------------


@pytest.mark.real
def test_plain_question(chat: LocalChatModel) -> None:
    answer = chat.invoke(QUESTION)
    assert isinstance(answer, AIMessage) and "Paris" in answer.text
    assert answer.tool_calls == []
    usage = answer.usage_metadata
    assert usage is not None and usage["input_tokens"] == chat.get_num_tokens_from_messages([HumanMessage(QUESTION)])
    assert 0 < usage["output_tokens"] <= 24
    meta = answer.response_metadata
    assert meta["model_name"] == "qwen2.5-coder-0.5b" and meta["finish_reason"] == "stop"
    assert 0 < meta["prefill_s"] <= meta["total_s"]


@pytest.mark.real
def test_token_count_is_the_rendered_prompt(chat: LocalChatModel) -> None:
    tok = chat.tokenizer
    history = [
        SystemMessage("You are terse."),
        HumanMessage(READ_PROMPT),
        AIMessage("", tool_calls=[{"name": "read_file", "args": {"path": "config.yaml"}, "id": "call_1"}]),
        ToolMessage("debug: true", tool_call_id="call_1", name="read_file"),
    ]
    hf = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": READ_PROMPT},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "read_file", "arguments": {"path": "config.yaml"}}}
            ],
        },
        {"role": "tool", "content": "debug: true"},
    ]
    schema = [convert_to_openai_tool(read_file)]
    ids = tok.apply_chat_template(hf, tools=schema, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert chat.get_num_tokens_from_messages(history, tools=[read_file]) == len(ids)
    prompt = chat.render_prompt(history, tools=[read_file])
    assert '<tool_call>\n{"name": "read_file", "arguments": {"path": "config.yaml"}}' in prompt
    assert "<tool_response>\ndebug: true\n</tool_response>" in prompt
    short = chat.get_num_tokens_from_messages([HumanMessage("hi")])
    longer = chat.get_num_tokens_from_messages([HumanMessage("hi " * 50)])
    assert short < longer < chat.get_num_tokens_from_messages([HumanMessage("hi " * 50)], tools=[read_file])
    assert chat.get_num_tokens("hello world") == len(tok.encode("hello world", add_special_tokens=False))


@pytest.mark.real
def test_bound_tool_is_called(chat: LocalChatModel) -> None:
    answer = chat.bind_tools([read_file]).invoke(TOOL_TURN)
    assert [(c["name"], c["args"]) for c in answer.tool_calls] == [("read_file", {"path": "config.yaml"})]
    assert answer.tool_calls[0]["id"].startswith("call_")
    assert answer.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.real
async def test_ainvoke_matches_invoke(chat: LocalChatModel) -> None:
    assert (await chat.ainvoke(QUESTION)).text == chat.invoke(QUESTION).text


@pytest.mark.real
def test_stream_adds_up_to_invoke(chat: LocalChatModel) -> None:
    prompt = "Name three colours, separated by commas."
    chunks = list(chat.stream(prompt))
    assert len(chunks) >= 2
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.text == chat.invoke(prompt).text
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] > 0

    streamed = None
    for chunk in chat.bind_tools([read_file]).stream(TOOL_TURN):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.text == ""
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [("read_file", {"path": "config.yaml"})]


@pytest.mark.real
def test_create_agent_runs_the_tool(chat: LocalChatModel) -> None:
    from langchain.agents import create_agent

    agent = create_agent(chat, [read_file], system_prompt=TOOL_SYSTEM)
    result = agent.invoke({"messages": [HumanMessage(READ_PROMPT)]}, {"recursion_limit": 6})
    tool_messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert tool_messages and tool_messages[0].content == "contents of config.yaml: debug: true"
    first_reply = result["messages"][1]
    assert isinstance(first_reply, AIMessage) and first_reply.tool_calls[0]["name"] == "read_file"
    assert isinstance(result["messages"][-1], AIMessage)
