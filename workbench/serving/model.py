"""What ``serve-model`` serves: a checkpoint (through the ``hf`` teacher's loading and batched generation) or a
trained run (with its method's task prefixes and number slots); :mod:`.batcher` generates for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import ConfigError, RunError
from workbench.core.paths import inside
from workbench.distill.methods import CAUSAL_SEP, Method, method_for_config
from workbench.distill.number_slots import NumberSlots, slots_for
from workbench.distill.runfolder import RunFolder
from workbench.models import catalog, convert
from workbench.rationales.teachers.hf import HFTeacher


@dataclass
class ServedModel:
    """What the server answers with: a loaded-on-demand teacher, and for a run its method (task prefixes)."""

    name: str
    teacher: HFTeacher
    method: Method | None = None  # for runs: their method's task prefixes
    numbers: str = "text"  # a run trained with number slots: inputs slotted, answers mapped back
    layout: str = "marker-first"  # where a run's encoder put its task markers (runs record it)

    def model_ids(self) -> list[str]:
        if self.method is None:
            return [self.name]
        heads = ["label"] + (["rationale"] if self.method.rationale_task is not None else [])
        return [self.name] + [f"{self.name}:{h}" for h in heads]

    def prepare(self, text: str, model: str | None) -> tuple[tuple[str, str, str], NumberSlots]:
        """The model's input for ``text`` as (before, text, after) — the server cuts only the middle — and the
        number slots that map its answer back."""
        slots = slots_for(self.numbers, text)
        return self.parts(slots.encode(text), model), slots

    def source(self, text: str, model: str | None) -> str:
        """The model's input for ``text``: for a run, its task marker (``model`` ending in ``:rationale`` or
        ``:label``) where the run put it, and a decoder-only student's separator last."""
        return "".join(self.parts(text, model))

    def parts(self, text: str, model: str | None) -> tuple[str, str, str]:
        if self.method is None:
            return "", text, ""
        head = (model or "").rpartition(":")[2] if ":" in (model or "") else "label"
        task = {"label": 0, "rationale": self.method.rationale_task}.get(head)
        if task is None:
            raise ConfigError(f"run {self.name!r} ({self.method.name}) has no head {head!r}; models: "
                              f"{', '.join(self.model_ids())}")
        marker = self.method.marker(task)
        if not self.teacher.loaded.is_causal:
            return (f"{marker} " if marker else ""), text, ""
        if self.layout == "marker-last":  # as the run's encoder: the question, then the marker and the separator
            return "", text, (f" {marker}" if marker else "") + CAUSAL_SEP
        return (f"{marker} " if marker else ""), text, CAUSAL_SEP


def resolve_model(spec: str, workspace: str | Path | None = None, *, max_batch: int = 32, **options: str
                  ) -> ServedModel:
    """A model folder or hub id, a run folder (or its ``model/``), ``run:NAME`` inside ``workspace``, or a pretrained
    catalog name (``smollm2-135m``: converted now if it never was, so the first request does not wait for it)."""
    if spec in catalog.MODELS and not Path(spec).expanduser().is_dir():
        catalog.check_available(spec)
        convert.resolve(spec)  # the one-time conversion, with its progress on stderr
        return ServedModel(spec, HFTeacher(spec, **{"stop": "", "batch_size": str(max_batch), **options}))
    if spec.startswith("run:"):
        if workspace is None:
            raise ConfigError("run:NAME needs the workspace (--workspace)")
        path = inside(Path(workspace) / "runs", spec[4:], "run")  # never a folder outside the workspace
        if not path.is_dir():
            raise RunError(f"no run {spec[4:]!r} in {workspace}; list runs with `workbench runs`")
    else:
        path = Path(spec).expanduser()
    run = RunFolder.find(path)
    if run is None and spec.startswith("run:"):
        raise RunError(f"run {spec[4:]!r} has no final model yet; resume it with `workbench train --resume`")
    opts = {"stop": "", "batch_size": str(max_batch), **options}
    if run is None:
        return ServedModel(path.name or spec, HFTeacher(spec, **opts))
    meta = run.read_meta()
    config = meta["config"]
    return ServedModel(run.name, HFTeacher(str(run.model_dir), **opts), method_for_config(config),
                       "slots" if config.get("numbers") == "slots" else "text",
                       (meta.get("generation") or {}).get("layout", "marker-first"))
