"""Speculative-prefill prompt compression for LangChain and LangGraph.

A small draft model reads the agent transcript (reusing its KV cache across steps), scores every token
by its own attention, and the least important spans of tool outputs and older turns are dropped
before a target chat model of any family reads the prompt.
"""

from .compressor import STATS_EVENT, SpecPrefillCompressor, compress_messages
from .config import CompressorConfig, PolicyConfig, ScoringConfig, SelectionConfig
from .draft import DraftModel
from .engine import CompressionResult, CompressionStats
from .explain import Explanation
from .kvcache import PrefixCache
from .langgraph import SpecPrefillNode, pre_model_hook
from .models import ModelNotInstalledError

__all__ = [
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
    "SpecPrefillCompressor",
    "SpecPrefillNode",
    "compress_messages",
    "pre_model_hook",
]

try:  # the middleware needs `langchain` (the `agents` extra); the rest of the package does not
    from .middleware import SpecPrefillMiddleware
except ImportError:
    pass
else:
    __all__ += ["SpecPrefillMiddleware"]

__version__ = "0.1.0"
