"""Loading safety: saved files are safetensors and JSON only, altered files are refused, no code runs.

Three kinds of check: what mint writes (every file of a saved model and of a training checkpoint),
what the sources could load (a syntax-tree scan of src/ for unpickling and remote-code switches),
and what happens to files that fail their recorded SHA-256 or that carry custom code.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from reliability_support import REPO, mint_env

from mint.audio import FrontendConfig
from mint.config import load_config
from mint.data.feature_cache import FeatureCache, StaleCacheError
from mint.data.manifest import ManifestRecord
from mint.data.sources import ManifestSource
from mint.encoders.config import EncoderConfig
from mint.errors import CheckpointError, DataError
from mint.llm.config import LLMConfig
from mint.modeling import MintModel
from mint.training.checkpoint import latest_valid_checkpoint, load_checkpoint, save_checkpoint
from mint.training.config import PretrainConfig
from mint_testing import tiny_model_overrides

SOURCES = sorted((REPO / "src" / "mint").rglob("*.py"))
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny MintModel and a training checkpoint of it, with optimizer state."""
    root = tmp_path_factory.mktemp("saved")
    config = load_config(PretrainConfig, None, tiny_model_overrides()).model
    model = MintModel.from_config(config)
    model.save_pretrained(root / "model")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sum(p.square().sum() for p in model.parameters() if p.requires_grad).backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    for step in (1, 2):
        save_checkpoint(root / "checkpoints", step, model.trainable_state_dict(), optimizer, scheduler, {}, 3)
    return {"model": root / "model", "checkpoints": root / "checkpoints", "optimizer": optimizer}


def _is_safetensors(path: Path) -> bool:
    data = path.read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    return all("dtype" in entry for name, entry in header.items() if name != "__metadata__")


def test_saved_models_and_checkpoints_hold_only_safetensors_and_json(saved: dict[str, Path]) -> None:
    for directory in (saved["model"], saved["checkpoints"]):
        files = [path for path in directory.rglob("*") if path.is_file()]
        assert files
        for path in files:
            assert path.suffix in {".safetensors", ".json"}, path
            head = path.read_bytes()[:4]
            # Pickle streams start with the PROTO opcode, torch.save archives are zip files.
            assert head[:1] != b"\x80" and head != b"PK\x03\x04", path
            if path.suffix == ".json":
                json.loads(path.read_text())
            else:
                assert _is_safetensors(path), path


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def _from_config(value: ast.AST) -> bool:
    """A trust_remote_code value that comes from a config field, or a literal False."""
    if isinstance(value, ast.Constant):
        return value.value is False
    return isinstance(value, ast.Attribute) and value.attr == "trust_remote_code"


def _remote_code_helpers(tree: ast.Module) -> set[str]:
    """Functions returning {"trust_remote_code": <config>.trust_remote_code}, for `**helper(config)`."""
    helpers = set()
    for function in (node for node in tree.body if isinstance(node, ast.FunctionDef)):
        for node in ast.walk(function):
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
                pairs = dict(zip(node.value.keys, node.value.values, strict=True))
                keys = {key.value: value for key, value in pairs.items() if isinstance(key, ast.Constant)}
                if set(keys) == {"trust_remote_code"} and _from_config(keys["trust_remote_code"]):
                    helpers.add(function.name)
    return helpers


def test_sources_never_unpickle_or_enable_remote_code_on_their_own() -> None:
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                problems += [
                    f"{where}: imports {n}" for n in names if n and n.split(".")[0] in UNPICKLING_MODULES
                ]
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "trust_remote_code"
                        and not _from_config(value)
                    ):
                        problems.append(f"{where}:{node.lineno}: trust_remote_code not from a config field")
        helpers = _remote_code_helpers(tree)
        for call in _calls(tree):
            name = _dotted(call.func)
            keywords = {keyword.arg: keyword.value for keyword in call.keywords}
            if name in ("eval", "exec"):
                problems.append(f"{where}:{call.lineno}: calls {name}()")
            if name.endswith(("torch.load", "numpy.load", "np.load")) or (name == "load" and "torch" in name):
                flag = keywords.get("weights_only")
                if name.endswith("torch.load") and not (
                    isinstance(flag, ast.Constant) and flag.value is True
                ):
                    problems.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
                pickle_flag = keywords.get("allow_pickle")
                if pickle_flag is not None and not (
                    isinstance(pickle_flag, ast.Constant) and not pickle_flag.value
                ):
                    problems.append(f"{where}:{call.lineno}: numpy load with allow_pickle")
            if "trust_remote_code" in keywords and not _from_config(keywords["trust_remote_code"]):
                problems.append(f"{where}:{call.lineno}: trust_remote_code not from a config field")
            if name.startswith("Auto") and name.endswith(".from_pretrained"):
                expanded = [k.value for k in call.keywords if k.arg is None and isinstance(k.value, ast.Call)]
                explicit = "trust_remote_code" in keywords or any(
                    _dotted(value.func) in helpers for value in expanded
                )
                if not explicit:
                    problems.append(f"{where}:{call.lineno}: {name} without an explicit trust_remote_code")
    assert not problems, "\n".join(problems)
    assert EncoderConfig().trust_remote_code is False and LLMConfig().trust_remote_code is False


TAMPERING = {
    "a flipped byte in the weights": ("flip", "model.safetensors", "does not match its recorded SHA-256"),
    "an edited config": ("flip", "config.json", "does not match its recorded SHA-256"),
    "a swapped tokenizer file": ("swap", "tokenizer/tokenizer.json", "does not match its recorded SHA-256"),
    "a deleted tokenizer file": (
        "delete",
        "tokenizer/tokenizer_config.json",
        "listed in checksums.json is missing",
    ),
    "no checksums.json": ("delete", "checksums.json", "no checksums.json; refusing to load"),
    "an unreadable checksums.json": ("truncate", "checksums.json", "unreadable digest record"),
    "a checksums.json of the wrong shape": ("list", "checksums.json", "unreadable digest record"),
    "an added tokenizer file": ("add", "tokenizer/special_tokens_map.json", "not listed in checksums.json"),
}


def _tamper(directory: Path, action: str, name: str) -> None:
    path = directory / name
    if action == "delete":
        path.unlink()
    elif action == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif action == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif action == "list":
        path.write_text(
            json.dumps({"algorithm": "sha256", "files": list(json.loads(path.read_text())["files"])})
        )
    elif action == "add":
        # Not listed, yet read by the tokenizer: it would turn [CLS] into [MASK].
        path.write_text(json.dumps({"cls_token": "[MASK]"}))
    else:
        # Another, valid tokenizer: the same vocabulary plus one token, as a swapped-in file would be.
        tokenizer = json.loads(path.read_text())
        tokenizer["added_tokens"].append({**tokenizer["added_tokens"][-1], "id": 99999, "content": "[ODD]"})
        path.write_text(json.dumps(tokenizer))


@pytest.mark.parametrize("case", list(TAMPERING))
def test_an_altered_saved_model_is_refused(case: str, saved: dict[str, Path], tmp_path: Path) -> None:
    action, name, message = TAMPERING[case]
    copy = tmp_path / "model"
    shutil.copytree(saved["model"], copy)
    _tamper(copy, action, name)
    with pytest.raises(CheckpointError, match=message) as info:
        MintModel.from_pretrained(copy)
    assert str(copy) in str(info.value)


@pytest.mark.parametrize("name", ["optimizer.safetensors", "rng.safetensors", "trainer_state.json"])
def test_an_altered_checkpoint_is_refused_and_passed_over(
    name: str, saved: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "checkpoints"
    shutil.copytree(saved["checkpoints"], copy)
    newest = copy / "step-000000002"
    _tamper(newest, "flip", name)
    optimizer = saved["optimizer"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with pytest.raises(CheckpointError, match=f"{name}: content does not match"):
        load_checkpoint(newest, optimizer, scheduler)
    assert latest_valid_checkpoint(copy) == copy / "step-000000001"
    (copy / "step-000000001" / "checksums.json").unlink()
    assert latest_valid_checkpoint(copy) is None


REMOTE_CODE_PROBE = textwrap.dedent(
    """
    import sys
    from mint.encoders import build_encoder
    from mint.encoders.config import EncoderConfig
    from mint.errors import MintError
    from mint.llm.config import LLMConfig
    from mint.llm.factory import load_llm

    for argument in sys.argv[1:]:
        path, trust = argument.rsplit(":", 1)
        trust = trust == "trust"
        for build in (
            lambda: build_encoder(EncoderConfig(kind="wav2vec2", name_or_path=path, trust_remote_code=trust)),
            lambda: load_llm(LLMConfig(name_or_path=path, trust_remote_code=trust)),
        ):
            try:
                build()
            except MintError as error:
                print(type(error).__name__, str(error).splitlines()[0])
    """
)


def _checkpoint_with_custom_code(directory: Path, model_type: str, marker: Path) -> Path:
    """A checkpoint whose config maps the Auto classes to its own module, which leaves `marker` when run."""
    directory.mkdir()
    auto_map = {"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomConfig"}
    (directory / "config.json").write_text(json.dumps({"model_type": model_type, "auto_map": auto_map}))
    (directory / "custom.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        f"class CustomConfig(PretrainedConfig):\n    model_type = {model_type!r}\n"
    )
    return directory


def test_custom_code_in_a_checkpoint_runs_only_when_the_config_trusts_it(tmp_path: Path) -> None:
    """An unknown model type (transformers would ask whether to run its code) and a known one."""
    cases = [
        (model_type, trust) for model_type in ("custom-audio", "wav2vec2") for trust in ("refuse", "trust")
    ]
    arguments = []
    for model_type, trust in cases:
        marker = tmp_path / f"ran-{model_type}-{trust}"
        checkpoint = _checkpoint_with_custom_code(tmp_path / f"{model_type}-{trust}", model_type, marker)
        arguments.append(f"{checkpoint}:{trust}")
    # The "y"s answer transformers' interactive "run the custom code?" question, were it ever asked.
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_PROBE, *arguments],
        input="y\n" * 16,
        env={**mint_env(), "HF_MODULES_CACHE": str(tmp_path / "modules")},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stdout.splitlines()) == 2 * len(cases), result.stdout  # every load refused cleanly
    for model_type, trust in cases:
        ran = (tmp_path / f"ran-{model_type}-{trust}").exists()
        # With trust the code runs: the switch works, so its absence without trust means something.
        assert ran == (trust == "trust"), (model_type, trust, result.stdout)


def test_a_damaged_feature_cache_entry_is_refused_naming_it(tmp_path: Path) -> None:
    audio = tmp_path / "clip.wav"
    sf.write(audio, np.zeros(1600, np.float32), 16000)
    source = ManifestSource([ManifestRecord(id="clip", audio=str(audio))])
    cache = FeatureCache(tmp_path / "cache", {"kind": "mel"}, FrontendConfig())
    cache.write_meta()
    entry = cache.path(cache.key(source.content_digest(0)))
    cache.write(cache.key(source.content_digest(0)), torch.ones(3, 4))
    assert torch.equal(cache.load(source, 0, "clip"), torch.ones(3, 4, dtype=torch.float16))
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with pytest.raises(DataError, match=re.escape(f"entry {entry} of clip 'clip' is unreadable")):
        cache.load(source, 0, "clip")
    entry.unlink()
    (tmp_path / "cache" / "meta.json").write_text("{not json")
    with pytest.raises(StaleCacheError, match=r"its meta\.json is unreadable"):
        cache.load(source, 0, "clip")
