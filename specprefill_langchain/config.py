"""Frozen configuration objects.

Everything a user can tune lives here as a frozen dataclass with ``Literal`` options, validated on
construction so that a bad value fails where it is written, with a message that says how to fix it.
The objects are plain data: printable, comparable, and serialisable with :func:`dataclasses.asdict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

Reduce = Literal["max", "mean"]
Mode = Literal["stable", "per_step"]
Role = Literal["tool", "human", "ai"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
OnError = Literal["raise", "passthrough"]
DTYPES: tuple[str, ...] = get_args(DType)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


@dataclass(frozen=True)
class ScoringConfig:
    """How the draft's attention becomes a per-token importance score (docs/design.md, "Scoring").

    query_window: which prompt positions act as queries. ``"question"`` (default) uses the tokens of
        the latest human message, restated at the end of the transcript when it is not already last,
        plus the generation prompt. An integer uses the last N positions of the scoring sequence
        (the reference speculative-prefill code uses 1, together with ``lookahead=7``).
    lookahead: greedy look-ahead steps whose queries are added (0 = none). Their tokens never stay
        in the draft's cache.
    pool_kernel: width of the 1-D average pool along tokens (1 = no pooling; must be odd).
    layer_reduce / head_reduce: how layers and heads are combined; the reference takes the max.
    query_reduce: how query steps are combined. The reference takes the mean; we take the max: a
        question's few decisive tokens (an identifier, a service name) would otherwise be averaged
        away by its many generic ones (measured: retention 0.75 -> 0.88 at keep 0.3).
    hop_chunks: a second scoring pass restates the N best chunks of the first after the question,
        and their tokens query again to find what *they* point to (a note names a record, the
        record never mentions the question). 0 = one pass. Costs one more short forward of the
        tail (no prefill); skipped for histories longer than the draft's context.
    layers: ``"auto"`` scores with every full-attention layer (sliding-window layers of models such
        as Gemma 3 only see a few hundred keys, so they are left out); ``"all"`` uses every layer
        whose cache holds all keys (the same thing for most models).
    max_question_tokens: cap on the restated question (its last tokens are kept).
    depth: run and score only the draft's first layers: a fraction of its layers (1.0 = all) or a
        layer count. The layers after are never computed (early layers already locate what the
        later ones use); raised if needed to reach the first full-attention layer. The default is
        the shallowest depth ``bench depth`` measured within 2 points of full depth at keep 0.3
        and 0.15 (SmolLM2, every fidelity and agent-loop kind; docs/results.json): 20 of SmolLM2's
        30 layers. ``depth=1.0`` runs the whole draft.
    query: what the queries ask about (module ``query``): ``"request"``, the latest human message;
        ``"step"`` (default), the agent's current step too (its latest tool calls with their
        arguments, the text that announced them, the newest results), then the request. Without an
        agent step after the request (a one-shot prompt) both are the request.
    """

    query_window: int | Literal["question"] = "question"
    lookahead: int = 0
    pool_kernel: int = 13
    layer_reduce: Reduce = "max"
    head_reduce: Reduce = "max"
    query_reduce: Reduce = "max"
    hop_chunks: int = 3
    layers: Literal["auto", "all"] = "auto"
    max_question_tokens: int = 384
    query: Literal["request", "step"] = "step"
    depth: float = 0.65

    def __post_init__(self) -> None:
        qw = self.query_window
        _check(
            qw == "question" or (isinstance(qw, int) and not isinstance(qw, bool) and qw >= 1),
            f"query_window={qw!r} is not valid: use 'question' or a positive number of tokens (e.g. 32).",
        )
        _check(
            0 <= self.lookahead <= 64,
            f"lookahead={self.lookahead} is out of range: use 0 (off) to 64 greedy steps; the reference uses 7.",
        )
        _check(
            self.pool_kernel >= 1 and self.pool_kernel % 2 == 1,
            f"pool_kernel={self.pool_kernel} must be a positive odd number (1 turns pooling off; default 13).",
        )
        _check(
            0 <= self.hop_chunks <= 32,
            f"hop_chunks={self.hop_chunks} is out of range: use 0 (one pass) to 32 restated chunks (default 3).",
        )
        _check(
            not isinstance(self.depth, bool) and isinstance(self.depth, int | float) and self.depth > 0,
            f"depth={self.depth!r} must be a fraction in (0, 1] of the draft's layers, or a layer count (e.g. 12).",
        )
        _check(
            self.query in ("request", "step"),
            f"query={self.query!r} is not valid: use 'step' (request + the agent's current step) or 'request'.",
        )
        _check(
            self.max_question_tokens >= 1,
            f"max_question_tokens={self.max_question_tokens} must be at least 1.",
        )


@dataclass(frozen=True)
class SelectionConfig:
    """How scored tokens become kept spans (docs/design.md, "Selection").

    chunk_tokens: target chunk length in draft tokens (the reference uses 32); chunks end at the
        strongest text boundary near that length (blank line, line end, whitespace), so that a line
        of code or a JSON record is kept or dropped whole and no word is ever cut.
    keep_neighbors: also keep up to this many draft tokens right after each kept chunk, up to the
        next line end (0 = off). Helps when the answer sits on the line after the one that matched.
    gap_marker: text inserted where a span was dropped.
    keep_mentions: chunks that contain a rare term the query names verbatim (a quoted value, a tool
        call's argument, an identifier; module ``mentions``) rank before every other chunk.
    """

    chunk_tokens: int = 32
    keep_neighbors: int = 0
    gap_marker: str = " … "
    keep_mentions: bool = True

    def __post_init__(self) -> None:
        _check(
            4 <= self.chunk_tokens <= 1024,
            f"chunk_tokens={self.chunk_tokens} is out of range: use 4 to 1024 (default 32).",
        )
        _check(self.keep_neighbors >= 0, f"keep_neighbors={self.keep_neighbors} must be >= 0.")


@dataclass(frozen=True)
class PolicyConfig:
    """Which messages may be compressed (docs/design.md, "Policy").

    The system prompt, the latest human message, tool-call names and arguments and non-text content
    blocks are never compressed. Of the rest, ``roles`` says which kinds may be: tool outputs, human
    text older than the latest human turn, AI text older than the latest human turn.

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
        bad = set(self.roles) - {"tool", "human", "ai"}
        _check(not bad, f"roles has unknown entries {sorted(bad)}: use any of 'tool', 'human', 'ai'.")
        _check(self.protect_last >= 0, f"protect_last={self.protect_last} must be >= 0.")
        _check(
            self.min_compressible_tokens >= 0,
            f"min_compressible_tokens={self.min_compressible_tokens} must be >= 0 (0 always compresses).",
        )


@dataclass(frozen=True)
class StableConfig:
    """When stable mode decides a tool result's compressed form (module ``schedule``).

    keep_recent: a tool result is decided once this many newer tool results exist (0: when it
        arrives, scored against the request and the call that fetched it). Larger values let a key
        that arrives later (a traceback naming a function) steer the decision, at one cache break
        per result when it is compressed.
    trigger_chars: below this many characters of history nothing is decided (everything is sent
        whole); the first step past it decides every eligible result at once.
    min_saving_chars: a result that the target has already read whole is compressed only when the
        results compressed together save at least this many characters (as ``clear_at_least``):
        each such change breaks the target's prefix cache once.
    expected_keep: the share of a result that compression is expected to keep, for that saving.
    min_message_chars: results shorter than this are decided whole without running the draft.
    window_chars: the draft reads the first message and the most recent messages within this many
        characters (~3.5 characters per token: the default stays inside an 8k-token draft context).
    """

    keep_recent: int = 0
    trigger_chars: int = 0
    min_saving_chars: int = 4000
    expected_keep: float = 0.3
    min_message_chars: int = 800
    window_chars: int = 20000

    def __post_init__(self) -> None:
        _check(self.keep_recent >= 0, f"keep_recent={self.keep_recent} must be >= 0 (0: decide on arrival).")
        _check(self.trigger_chars >= 0, f"trigger_chars={self.trigger_chars} must be >= 0.")
        _check(self.min_saving_chars >= 0, f"min_saving_chars={self.min_saving_chars} must be >= 0.")
        _check(0.0 <= self.expected_keep <= 1.0, f"expected_keep={self.expected_keep} must be a fraction in [0, 1].")
        _check(self.min_message_chars >= 0, f"min_message_chars={self.min_message_chars} must be >= 0.")
        _check(
            self.window_chars >= 2000,
            f"window_chars={self.window_chars} is too small: the draft needs at least 2000 characters of context.",
        )


@dataclass(frozen=True)
class CompressorConfig:
    """Everything a :class:`~specprefill_langchain.SpecPrefillCompressor` needs to know.

    keep_ratio: fraction of the compressible draft tokens to keep, in (0, 1].
    max_target_tokens: instead of (or on top of) a ratio, an absolute budget for the whole prompt in
        *target* tokens, counted with the target model's ``get_num_tokens_from_messages`` when a
        target is given, else estimated. The stricter of the two wins.
    draft: short name (``specprefill models list``), local folder, GGUF file or hub id.
    dtype: the draft's dtype. ``"auto"`` (default): bfloat16 where the device computes it fast
        (oneDNN on CPU, native on GPU), else float32; see ``bench kv-reuse`` for the measured gain.
    prefill_chunk: tokens per forward pass of the draft while prefilling (bounds memory).
    cache_bytes: memory budget of the draft's prefix KV cache store.
    cache_ttl_s: drop cached prefixes not used for this many seconds (None: only the byte budget evicts).
    on_error: ``"raise"``, or ``"passthrough"`` (return the input unchanged with a warning, and
        ``stats.error`` set) so that a failing draft never breaks an agent loop.
    max_input_chars: refuse (``ValueError``, or pass through under ``on_error="passthrough"``)
        transcripts with more text than this: the draft reads ~500 tokens/s on a laptop CPU, so a
        10 MB tool output would stall the agent for hours. Trim such outputs at the tool.
    """

    keep_ratio: float = 0.3
    max_target_tokens: int | None = None
    draft: str = "smollm2-135m"
    dtype: DType = "auto"
    device: str = "cpu"
    prefill_chunk: int = 512
    cache_bytes: int = 2 * 1024**3
    cache_ttl_s: float | None = None
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
            mt is None or (isinstance(mt, int) and mt > 0),
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
        _check(
            64 <= self.prefill_chunk <= 8192,
            f"prefill_chunk={self.prefill_chunk} is out of range: use 64 to 8192 tokens.",
        )
        _check(self.cache_bytes >= 0, f"cache_bytes={self.cache_bytes} must be >= 0 (0 disables reuse).")
        _check(
            self.cache_ttl_s is None or self.cache_ttl_s > 0,
            f"cache_ttl_s={self.cache_ttl_s} must be a positive number of seconds, or None for no expiry.",
        )
        _check(
            self.on_error in ("raise", "passthrough"),
            f"on_error={self.on_error!r} is not valid: use 'raise' or 'passthrough'.",
        )

        _check(
            self.max_input_chars > 0,
            f"max_input_chars={self.max_input_chars} must be a positive number of characters.",
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (frozensets become sorted lists)."""

        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, frozenset | set):
                return sorted(v)
            return v

        return clean(asdict(self))

    def with_(self, **changes: Any) -> CompressorConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)
