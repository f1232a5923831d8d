"""``LocalChatModel``: a LangChain chat model that runs a local Hugging Face causal LM on CPU.

It is the *target* model of the examples and benchmarks (Qwen2.5-Coder-0.5B-Instruct by default). Prompts
are rendered with the model's own chat template (tools included), so :meth:`get_num_tokens_from_messages`
counts exactly what the model reads, which is what the compressor budgets against.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage, ToolMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from specprefill_langchain import models
from specprefill_langchain.bench.toolcalls import OPEN_TAG, parse_tool_calls, safe_prefix

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
_NO_FORCING = (None, "auto", "any", "required", True, False)


@dataclass
class LoadedModel:
    """A loaded target: tokenizer, model, seconds it took, and the lock that serialises its use."""

    tokenizer: Any
    model: Any
    load_s: float
    # One generation at a time per model: parallel calls would only fight over the same CPU cores and
    # make every timing meaningless.
    lock: threading.Lock = field(default_factory=threading.Lock)


_REGISTRY: dict[tuple[str, str], LoadedModel] = {}
_REGISTRY_LOCK = threading.Lock()


@dataclass
class _Call:
    """One prepared generation: the model, ``generate`` kwargs and what decoding needs to know."""

    loaded: LoadedModel
    gen: dict[str, Any]
    n_in: int
    tool_names: list[str]
    stop: list[str]


def load_model(name: str, dtype: str) -> LoadedModel:
    """Load a model once per (folder, dtype); every ``LocalChatModel`` with that pair shares it."""
    from specprefill_langchain.draft import resolve_dtype

    dtype = resolve_dtype(dtype)
    folder = models.resolve(name)  # ~35 µs once converted, so fine on every call
    key = (str(folder), dtype)
    with _REGISTRY_LOCK:
        if key not in _REGISTRY:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            start = time.perf_counter()
            # local_files_only: no machine of this project reaches a hub, so never try.
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=getattr(torch, dtype), local_files_only=True
            ).eval()
            _REGISTRY[key] = LoadedModel(tokenizer, model, time.perf_counter() - start)
        return _REGISTRY[key]


def _to_hf(message: BaseMessage) -> dict[str, Any]:
    """One LangChain message as the dict that Hugging Face chat templates expect."""
    role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type)
    if role is None:
        msg = f"unsupported message type {type(message).__name__}; use System/Human/AI/Tool/ChatMessage"
        raise ValueError(msg)
    out: dict[str, Any] = {"role": role, "content": message.text}
    if isinstance(message, ToolMessage):
        out |= {"name": message.name, "tool_call_id": message.tool_call_id}
    if isinstance(message, AIMessage) and message.tool_calls:
        # HF format, with the arguments as a dict: the template serialises them itself.
        out["tool_calls"] = [
            {"type": "function", "id": c["id"], "function": {"name": c["name"], "arguments": c["args"]}}
            for c in message.tool_calls
        ]
    return out


class _TimedStreamer(TextIteratorStreamer):
    """Text streamer that also notes when the first generated token exists (time to first token)."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.calls, self.first = 0, None  # generate() hands over the prompt first, then each new token

    def put(self, value: torch.Tensor) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()
        super().put(value)


class _Cancelled(StoppingCriteria):
    """Stops a streamed generation whose consumer went away, so the thread frees the model."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class LocalChatModel(BaseChatModel):
    """A local Hugging Face chat model on CPU (default: Qwen2.5-Coder-0.5B-Instruct, tool calling).

    Call options: ``max_new_tokens`` and ``temperature`` override the fields for one call.
    ``response_metadata`` holds ``prefill_s`` (time to the first token), ``total_s`` and ``decode_tok_s``.
    """

    model: str = "qwen2.5-coder-0.5b"
    """A short name from :mod:`specprefill_langchain.models`, a model folder or a ``.gguf`` file."""
    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy decoding (deterministic)."""
    dtype: Literal["auto", "float32", "bfloat16"] = "bfloat16"
    """bfloat16 by default: the dtype its tool-call format was checked in (in float32 the 0.5B model
    sometimes writes a fenced JSON block instead of tool-call tags). ``"auto"`` follows the draft's rule."""

    @property
    def _llm_type(self) -> str:
        return "specprefill-local-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("model", "max_new_tokens", "temperature", "dtype")}

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer (loads the model on first use)."""
        return load_model(self.model, self.dtype).tokenizer

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Bind tools as OpenAI-style schemas; the chat template shows them to the model.

        A local model cannot be forced to call a tool, so ``tool_choice`` only narrows what it sees:
        ``"none"`` hides the tools, a tool name (or ``{"function": {"name": ...}}``) shows only that
        tool, and ``"auto"``/``"any"``/``"required"``/``True`` show all of them.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        wanted = tool_choice["function"]["name"] if isinstance(tool_choice, dict) else tool_choice
        if wanted not in (*_NO_FORCING, "none") and wanted not in names:
            msg = f"tool_choice {tool_choice!r} names no bound tool; use one of {names} or 'auto'/'none'"
            raise ValueError(msg)
        return super().bind(tools=formatted, tool_choice=wanted, **kwargs)

    def render_prompt(self, messages: Sequence[BaseMessage], tools: Sequence[Any] | None = None) -> str:
        """The exact prompt text the model reads: chat template, tools and generation prompt."""
        if not messages:
            msg = "got no messages; pass at least one HumanMessage"
            raise ValueError(msg)
        schemas = [convert_to_openai_tool(t) for t in tools] if tools else None
        return self.tokenizer.apply_chat_template(
            [_to_hf(m) for m in messages], tools=schemas, add_generation_prompt=True, tokenize=False
        )

    def get_num_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Tokens of the rendered prompt, exactly as :meth:`invoke` would feed them to the model."""
        return self.get_num_tokens(self.render_prompt(messages, tools))

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kw: dict[str, Any]) -> _Call:
        tools, choice = kw.get("tools"), kw.get("tool_choice")
        if choice == "none":
            tools = None
        elif tools and choice not in _NO_FORCING:
            tools = [t for t in tools if t["function"]["name"] == choice]
        loaded = load_model(self.model, self.dtype)
        # The template already holds every special token, so the tokenizer must add none.
        ids = loaded.tokenizer(self.render_prompt(messages, tools), add_special_tokens=False, return_tensors="pt")
        temperature = kw.get("temperature", self.temperature)
        gen = {
            **ids,
            **({"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}),
            "max_new_tokens": kw.get("max_new_tokens", self.max_new_tokens),
            "pad_token_id": loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id,
        }
        if stop:
            gen |= {"stop_strings": stop, "tokenizer": loaded.tokenizer}
        names = [t["function"]["name"] for t in tools or ()]
        return _Call(loaded, gen, ids["input_ids"].shape[1], names, stop or [])

    def _run(self, call: _Call, streamer: _TimedStreamer, **extra: Any) -> AIMessage:
        """Generate, then decode the new tokens into an ``AIMessage`` with tool calls, usage and timing."""
        with call.loaded.lock, torch.inference_mode():
            start = time.perf_counter()
            new = call.loaded.model.generate(**call.gen, streamer=streamer, **extra)[0, call.n_in :]
            end, first = time.perf_counter(), streamer.first
        text = call.loaded.tokenizer.decode(new, skip_special_tokens=True)
        stopped = any(s in text for s in call.stop)
        for s in call.stop:
            text = text.split(s, 1)[0]  # generate() stops *after* a stop string; LangChain cuts it off
        content, calls, invalid = parse_tool_calls(text, call.tool_names)
        eos = call.loaded.model.generation_config.eos_token_id
        stopped |= len(new) > 0 and int(new[-1]) in (eos if isinstance(eos, list) else [eos])
        n_in, n_out = call.n_in, len(new)
        return AIMessage(
            content=content,
            tool_calls=calls,
            invalid_tool_calls=invalid,
            usage_metadata={"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out},
            response_metadata={
                "model_name": self.model,
                "finish_reason": "tool_calls" if calls else "stop" if stopped else "length",
                "prefill_s": (first or end) - start,  # prompt forward pass + choosing the first token
                "total_s": end - start,
                "decode_tok_s": (n_out - 1) / (end - first) if first and n_out > 1 and end > first else None,
            },
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        message = self._run(call, _TimedStreamer(call.loaded.tokenizer))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        streamer, cancel = _TimedStreamer(call.loaded.tokenizer), threading.Event()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                criteria = StoppingCriteriaList([_Cancelled(cancel)])
                result["message"] = self._run(call, streamer, stopping_criteria=criteria)
            except BaseException as exc:  # re-raised in the caller's thread below
                result["error"] = exc
                streamer.end()  # unblocks the consumer, which would otherwise wait forever

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        emitted, buffer = "", ""
        try:
            for piece in streamer:
                buffer += piece
                safe = safe_prefix(buffer, [OPEN_TAG, *call.stop], bool(call.tool_names))
                if len(safe) > len(emitted) and safe.startswith(emitted):
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=safe[len(emitted) :]))
                    emitted = safe
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        finally:
            cancel.set()
            thread.join()
        if "error" in result:
            raise result["error"]
        final: AIMessage = result["message"]
        calls = [(c["name"], json.dumps(c["args"]), c["id"]) for c in final.tool_calls]
        calls += [(c["name"], c["args"], c["id"]) for c in final.invalid_tool_calls]
        last = AIMessageChunk(
            content=final.text[len(emitted) :] if final.text.startswith(emitted) else "",
            tool_call_chunks=[tool_call_chunk(name=n, args=a, id=i, index=k) for k, (n, a, i) in enumerate(calls)],
            usage_metadata=final.usage_metadata,
            response_metadata=final.response_metadata,
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=last)


__all__ = ["LoadedModel", "LocalChatModel", "load_model", "parse_tool_calls"]
