"""A readable kept/dropped view of one compression, for terminals and notebooks."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from .chatformat import safe_json
from .stats import CompressionResult, CompressionStats


@dataclass(frozen=True)
class MessageView:
    index: int
    role: str
    pieces: tuple[tuple[str, bool], ...]  # (text, kept) in order; protected text counts as kept
    compressed: bool

    @property
    def kept_chars(self) -> int:
        return sum(len(t) for t, k in self.pieces if k)

    @property
    def total_chars(self) -> int:
        return sum(len(t) for t, _ in self.pieces)


@dataclass(frozen=True)
class Explanation:
    """What a compression kept (plain) and dropped (marked), message by message, plus its stats."""

    messages: tuple[MessageView, ...]
    stats: CompressionStats
    dropped_marks: tuple[str, str] = field(default=("[-", "-]"))

    @classmethod
    def from_result(cls, result: CompressionResult) -> Explanation:
        views = []
        t = result.transcript
        for i, m in enumerate(result.original):
            parts = [] if t is None else [(pi, p) for pi, p in enumerate(t.parts) if p.message == i and p.block != -1]
            pieces: list[tuple[str, bool]] = []
            compressed = False
            for pi, p in parts:
                if pi not in result.kept:
                    pieces.append((p.text, True))
                    continue
                compressed = True
                pos = 0
                for a, b in sorted(result.kept[pi]):
                    if a > pos:
                        pieces.append((p.text[pos:a], False))
                    pieces.append((p.text[a:b], True))
                    pos = b
                if pos < len(p.text):
                    pieces.append((p.text[pos:], False))
            if t is None:
                pieces = [(m.text, True)]
            for call in getattr(m, "tool_calls", None) or []:  # never compressed; shown for context
                pieces.append((f"\n-> tool call {call['name']}({safe_json(call['args'])})", True))
            views.append(MessageView(i, m.type, tuple(pieces), compressed))
        return cls(tuple(views), result.stats)

    def __str__(self) -> str:
        lo, hi = self.dropped_marks
        s = self.stats
        lines = [
            f"SpecPrefill: {s.draft_tokens_in} -> {s.draft_tokens_out} draft tokens "
            f"(kept {s.kept_fraction:.0%} of {s.compressible_tokens} compressible; "
            f"{s.reused_tokens} reused from cache; {s.total_s * 1000:.0f} ms)"
            + (f" [passthrough: {s.reason}]" if s.passthrough else ""),
            f"dropped text is shown as {lo}...{hi}",
        ]
        for v in self.messages:
            tag = f"kept {v.kept_chars}/{v.total_chars} chars" if v.compressed else "unchanged"
            lines.append(f"--- [{v.index}] {v.role} ({tag})")
            lines.append("".join(t if k else f"{lo}{t}{hi}" for t, k in v.pieces))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        s = self.stats
        out = [
            "<div style='font-family:monospace;white-space:pre-wrap'>",
            f"<b>SpecPrefill</b>: {s.draft_tokens_in} &rarr; {s.draft_tokens_out} draft tokens, "
            f"kept {s.kept_fraction:.0%} of {s.compressible_tokens} compressible, "
            f"{s.reused_tokens} reused, {s.total_s * 1000:.0f} ms<br>",
        ]
        for v in self.messages:
            out.append(f"<hr><b>[{v.index}] {html.escape(v.role)}</b><br>")
            for t, k in v.pieces:
                esc = html.escape(t)
                out.append(esc if k else f"<span style='color:#999;text-decoration:line-through'>{esc}</span>")
        out.append("</div>")
        return "".join(out)
