"""Frozen configuration objects: the knobs a user tunes, and nothing else.

Everything a user can tune lives here as a frozen dataclass with ``Literal`` options, validated on
construction so that a bad value fails where it is written, with a message that says how to fix it.
The objects are plain data: printable, comparable, and serialisable with :func:`to_dict`.

What is *not* here is deliberate: the scoring arithmetic of the speculative-prefill reference (pool
width, max over layers/heads/queries), chunk length, prefill chunk size and the like are named
constants in the module that uses them, each with its reason (docs/design.md, "Settings").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

Mode = Literal["stable", "per_step"]
Role = Literal["tool", "human", "ai"]
Focus = Literal["request", "step"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
OnError = Literal["raise", "passthrough"]
DTYPES: tuple[str, ...] = get_args(DType)
MODES: tuple[str, ...] = get_args(Mode)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


def check_mode(mode: object) -> None:
    """Fail, with the fix, on a mode that is neither ``"stable"`` nor ``"per_step"``."""
    _check(mode in MODES, f"mode={mode!r} is not valid: use 'stable' (default) or 'per_step'.")


@dataclass(frozen=True)
class ScoringConfig:
    """How the draft's attention decides what matters (docs/design.md, "Focus", "Scoring", "Passes").

    focus: what the draft's queries ask about. ``"request"``: the latest human message.
        ``"step"`` (default): the agent's current step too — the tool calls that fetched the results
        being scored with the text that announced them, the lines of recent results that led to
        those calls, the error lines of the newest results — then the request. Without an agent
        step after the request (a one-shot prompt) both are the request.
    depth: run and score only the draft's first layers: a fraction of its layers (1.0 = all) or a
        layer count. The layers after are never computed. The default is the shallowest depth that
        ``bench depth`` measured within 2 points of full depth (docs/results.json, "depth").
    hop_chunks: a second pass restates the N best chunks of the first after the focus, and their
        tokens query again to find what *they* point to (a note names a record that never mentions
        the question). 0 = one pass.
    """

    focus: Focus = "step"
    depth: float = 0.65
    hop_chunks: int = 3

    def __post_init__(self) -> None:
        _check(
            self.focus in get_args(Focus),
            f"focus={self.focus!r} is not valid: use 'step' (request + the agent's current step) or 'request'.",
        )
        _check(
            not isinstance(self.depth, bool) and isinstance(self.depth, int | float) and self.depth > 0,
            f"depth={self.depth!r} must be a fraction in (0, 1] of the draft's layers, or a layer count (e.g. 12).",
        )
        _check(
            isinstance(self.hop_chunks, int) and 0 <= self.hop_chunks <= 32,
            f"hop_chunks={self.hop_chunks!r} is out of range: use 0 (one pass) to 32 restated chunks (default 3).",
        )


@dataclass(frozen=True)
class SelectionConfig:
    """How scored chunks become the text that is kept (docs/design.md, "Selection", "Mentions").

    gap_marker: text put where a span was dropped (the recall note names it, so the target knows).
    keep_mentions: chunks that contain, verbatim, a rare term the focus names (a quoted value, a
        tool call's argument, an identifier) rank before every other chunk.
    """

    gap_marker: str = " … "
    keep_mentions: bool = True

    def __post_init__(self) -> None:
        _check(
            isinstance(self.gap_marker, str) and bool(self.gap_marker.strip()),
            f"gap_marker={self.gap_marker!r} must show something: the target has to see where text is missing.",
        )


@dataclass(frozen=True)
class PolicyConfig:
    """Which messages may be compressed (docs/design.md, "Policy").

    The system prompt, the latest human message, tool-call names and arguments and non-text content
    blocks are never compressed. Of the rest, ``roles`` says which kinds may be: tool outputs, human
    text older than the latest human turn, AI text older than the latest human turn (stable mode
    compresses tool outputs only: an old turn rewritten later would break the target's cache).

    tools / skip_tools: compress only the outputs of these tool names / never these (by
        ``ToolMessage.name``). ``None`` means no restriction.
    protect_last: never compress the last N messages.
    min_compressible_tokens: below this many compressible draft tokens the input passes through
        unchanged (compression would cost more than it saves).
    """

    roles: frozenset[Role] = frozenset({"tool", "human", "ai"})
    tools: frozenset[str] | None = None
    skip_tools: frozenset[str] = frozenset()
    protect_last: int = 0
    min_compressible_tokens: int = 256

    def __post_init__(self) -> None:
        # Accept any iterable from users, store frozensets so the object stays hashable.
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "skip_tools", frozenset(self.skip_tools))
        if self.tools is not None:
            object.__setattr__(self, "tools", frozenset(self.tools))
        bad = set(self.roles) - set(get_args(Role))
        _check(not bad, f"roles has unknown entries {sorted(bad)}: use any of 'tool', 'human', 'ai'.")
        _check(self.protect_last >= 0, f"protect_last={self.protect_last} must be >= 0.")
        _check(
            self.min_compressible_tokens >= 0,
            f"min_compressible_tokens={self.min_compressible_tokens} must be >= 0 (0 always compresses).",
        )


@dataclass(frozen=True)
class StableConfig:
    """When stable mode decides a tool result's compressed form, and what it may bring back later.

    keep_recent: a tool result is decided once this many newer tool results exist (0: when it
        arrives). Larger values let a later step steer the decision, at one cache break per result.
    trigger_chars: below this many characters of history nothing is decided (everything goes whole).
    min_saving_chars: a result the target has already read whole is compressed only when the results
        compressed together save at least this many characters (each such change breaks the target's
        prefix cache once), as LangChain's ``clear_at_least``.
    min_message_chars: results shorter than this are decided whole without running the draft.
    context_chars: how much of the history the draft reads around the results it decides: the head
        (system prompt, request) and the step's new messages always, plus earlier messages within
        this many characters. 0 (the default, ``bench cost`` measured it) reads no earlier message:
        each step then prefills only its own new tokens, at a short context.
    rescue: bring back, append-only, the dropped lines of earlier outputs that the current step names
        (a failing test names a function, a log line a key, a follow-up asks about an old result);
        docs/design.md, "Rescue".
    rescue_chars: at most this many characters rescued per step (the rescue's own budget).
    """

    keep_recent: int = 0
    trigger_chars: int = 0
    min_saving_chars: int = 4000
    min_message_chars: int = 800
    context_chars: int = 0
    rescue: bool = True
    rescue_chars: int = 1200

    def __post_init__(self) -> None:
        _check(self.keep_recent >= 0, f"keep_recent={self.keep_recent} must be >= 0 (0: decide on arrival).")
        _check(self.trigger_chars >= 0, f"trigger_chars={self.trigger_chars} must be >= 0.")
        _check(self.min_saving_chars >= 0, f"min_saving_chars={self.min_saving_chars} must be >= 0.")
        _check(self.min_message_chars >= 0, f"min_message_chars={self.min_message_chars} must be >= 0.")
        _check(self.context_chars >= 0, f"context_chars={self.context_chars} must be >= 0 (0: the new messages only).")
        _check(self.rescue_chars >= 0, f"rescue_chars={self.rescue_chars} must be >= 0 (0 rescues nothing).")


@dataclass(frozen=True)
class CompressorConfig:
    """Everything a :class:`~specprefill_langchain.SpecPrefillCompressor` needs to know.

    keep_ratio: fraction of the compressible draft tokens to keep, in (0, 1].
    max_target_tokens: instead of (or on top of) a ratio, a budget for the whole prompt in *target*
        tokens, counted with the target model's ``get_num_tokens_from_messages`` when a target is
        given, else estimated. The stricter of the two wins.
    draft: short name (``specprefill models list``), local folder, GGUF file or hub id.
    dtype: the draft's dtype. ``"auto"`` (default): bfloat16 where the device computes it natively,
        else float32.
    device: where the draft runs (``"cpu"``, ``"cuda"``, ...).
    cache_bytes: memory budget of the draft's prefix KV cache store (0 disables reuse).
    on_error: ``"raise"``, or ``"passthrough"`` (return the input unchanged with a warning and a log
        record, ``stats.error`` set) so that a failing draft never breaks an agent loop.
    max_input_chars: the most text the draft reads in one call. A single message longer than this is
        sent whole without being read (logged, ``stats.unread``); a transcript longer than this is
        refused (``ValueError``, or passed through under ``on_error="passthrough"``): the draft reads
        ~500 tokens/s on a laptop CPU, so a 10 MB tool output would stall the agent for hours.
    """

    keep_ratio: float = 0.3
    max_target_tokens: int | None = None
    draft: str = "smollm2-135m"
    dtype: DType = "auto"
    device: str = "cpu"
    cache_bytes: int = 2 * 1024**3
    on_error: OnError = "raise"
    max_input_chars: int = 1_000_000
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    stable: StableConfig = field(default_factory=StableConfig)

    def __post_init__(self) -> None:
        kr = self.keep_ratio
        _check(
            isinstance(kr, int | float) and not isinstance(kr, bool) and 0.0 < kr <= 1.0,
            f"keep_ratio={kr!r} is out of range: use a fraction in (0, 1], e.g. 0.3 keeps 30% of the "
            "compressible text.",
        )
        mt = self.max_target_tokens
        _check(
            mt is None or (isinstance(mt, int) and not isinstance(mt, bool) and mt > 0),
            f"max_target_tokens={mt!r} must be a positive number of target tokens, or None for no limit.",
        )
        _check(
            isinstance(self.draft, str) and bool(self.draft.strip()),
            f"draft={self.draft!r} is empty: name a draft such as 'smollm2-135m' "
            "(see `specprefill models list`), a local folder or a GGUF file.",
        )
        _check(
            self.dtype in DTYPES,
            f"dtype={self.dtype!r} is not supported: use one of {', '.join(map(repr, DTYPES))}.",
        )
        _check(self.cache_bytes >= 0, f"cache_bytes={self.cache_bytes} must be >= 0 (0 disables reuse).")
        _check(
            self.on_error in get_args(OnError),
            f"on_error={self.on_error!r} is not valid: use 'raise' or 'passthrough'.",
        )
        _check(
            self.max_input_chars > 0,
            f"max_input_chars={self.max_input_chars} must be a positive number of characters.",
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (frozensets become sorted lists)."""
        return _plain(asdict(self))

    def with_(self, **changes: Any) -> CompressorConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, frozenset | set):
        return sorted(v)
    return v
