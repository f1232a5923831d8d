"""Speculative-prefill prompt compression for LangChain and LangGraph.

A small draft model reads the agent transcript (reusing its KV cache across steps), scores every token
by its own attention, and the least important spans of tool outputs and older turns are dropped
before a target chat model of any family reads the prompt.
"""

from .compressor import SpecPrefillCompressor, compress_messages
from .config import CompressorConfig, PolicyConfig, ScoringConfig, SelectionConfig, StableConfig
from .draft import DraftModel
from .events import STATS_EVENT
from .explain import Explanation
from .kvcache import PrefixCache
from .langgraph import SpecPrefillAgentState, SpecPrefillNode, SpecPrefillState, pre_model_hook
from .models import ModelNotInstalledError
from .recall import recall_tool
from .schedule import FROZEN_KEY
from .stats import CompressionResult, CompressionStats

__all__ = [
    "FROZEN_KEY",
    "STATS_EVENT",
    "CompressionResult",
    "CompressionStats",
    "CompressorConfig",
    "DraftModel",
    "Explanation",
    "ModelNotInstalledError",
    "PolicyConfig",
    "PrefixCache",
    "ScoringConfig",
    "SelectionConfig",
    "SpecPrefillAgentState",
    "SpecPrefillCompressor",
    "SpecPrefillNode",
    "SpecPrefillState",
    "StableConfig",
    "compress_messages",
    "pre_model_hook",
    "recall_tool",
]

# The middleware needs `langchain` >= 1.2.9 (the `agents` extra); the rest of the package does not. If
# it is missing or too old, the package still imports, and `SpecPrefillMiddleware` raises the real
# cause (how to install it, or which version is needed) where it is used.
_middleware_error: ImportError | None = None
try:
    from .middleware import SpecPrefillMiddleware
except ImportError as err:
    _middleware_error = err
else:
    __all__ += ["SpecPrefillMiddleware"]


def __getattr__(name: str) -> object:
    if name == "SpecPrefillMiddleware" and _middleware_error is not None:
        raise ImportError(str(_middleware_error)) from _middleware_error.__cause__
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__version__ = "0.1.0"
