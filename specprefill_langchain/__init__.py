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
]

# The middleware needs `langchain` (the `agents` extra); the rest of the package does not. Only its
# absence is silent: a `langchain` that is installed but fails to import raises here, with its cause.
try:
    from .middleware import SpecPrefillMiddleware
except ImportError as err:
    missing = err.__cause__ if isinstance(err.__cause__, ModuleNotFoundError) else None
    if missing is None or (missing.name or "").split(".")[0] != "langchain":
        raise
else:
    __all__ += ["SpecPrefillMiddleware"]

__version__ = "0.1.0"
