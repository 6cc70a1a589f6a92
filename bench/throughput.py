"""Training throughput: our ``dss`` trainer against the paper's ``TaskPrefixTrainer`` pattern.

    .venv/bin/python bench/throughput.py                         # tiny and small students; writes
                                                                 # bench/results/throughput.json and .md
    .venv/bin/python bench/throughput.py --students tiny --reps 7 --steps 80
    .venv/bin/python bench/throughput.py --smoke                 # a seconds-long version (used by the tests)

The baseline does what google-research/distilling-step-by-step does (``model_utils.py``, ``train_utils.py``): a
``Seq2SeqTrainer`` with its defaults (random sampling, fp32), a ``DataCollatorForSeq2Seq`` that pads the label and
the rationale sub-batches each on its own, and TWO forward passes per step, each given ``labels=`` so the model
computes its own mean loss; the step loss is ``alpha * loss_label + (1 - alpha) * loss_rationale``. Ours is the
library's :class:`~workbench.distill.trainer.DistillTrainer` with the library's ``training_arguments``, ``Encoder`` and
``Collator``, built as :func:`workbench.distill.trainer.fit` builds them (one encoder pass over the stacked sub-batches,
the decoder per task at its own width, length-grouped batches).

Both train the same student (same initial weights, same optimiser settings) on the same built-in word problems with
the builtin teacher's rationales, for the same number of steps, alternating in one process over several
repetitions (one seed per repetition); figures are medians. Measured per run: examples/s and tokens/s over the
steps after a few warm-up steps (tokens: non-pad tokens fed to the encoder plus target tokens scored), padding
overhead, peak memory (CPU: peak RSS of this process during the run, reset before each run through
``/proc/self/clear_refs``; CUDA: ``torch.cuda.max_memory_allocated``) and the loss on a fixed held-out batch after
the run (the same objective for both). A same-batch check shows the two compute the same loss and gradients.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Only modules that need torch + transformers (+ the standard library): bench/gpu.py imports this file on GPU
# machines that have neither `datasets` nor `gradio`.
from results_io import reset_peak_rss, rss_kib, write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.distill.config import TrainConfig  # noqa: E402
from workbench.distill.encoding import Collator, Encoder, forward_logits  # noqa: E402
from workbench.distill.losses import IGNORE  # noqa: E402
from workbench.distill.methods import get_method  # noqa: E402
from workbench.distill.students import PRESETS, build_word_tokenizer, count_parameters  # noqa: E402
from workbench.distill.trainer import DistillTrainer, training_arguments  # noqa: E402
from workbench.rationales.generation import generate_rationales  # noqa: E402
from workbench.rationales.teachers import get_teacher  # noqa: E402
from workbench.rationales.trainingset import build_training_set  # noqa: E402

ALPHA = 0.5  # the library's default dss weight; the paper's code uses the same by default


# -- data -------------------------------------------------------------------------------------------------------
@dataclass
class Data:
    """Training rows and a held-out batch with the builtin teacher's rationales, and their tokenizer."""

    train: list[dict]
    held_out: list[dict]
    tokenizer: object


def wordproblem_data(n_train: int, n_held_out: int) -> Data:
    """Built-in word problems answered by the builtin teacher, in a throwaway workspace (SQLite only)."""
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        # The teacher's parse errors are dropped (as in training), so ask for a few more rows than needed.
        task = load_task("wordproblems", store, n_train=int(1.4 * (n_train + n_held_out)) + 16, n_valid=1,
                         n_test=1)
        generate_rationales(store, task, get_teacher("builtin"))
        rows = build_training_set(store, task, "builtin").rows
        inputs = [e.input for e in store.examples(task.name)]
        store.close()
    if len(rows) < n_train + n_held_out:
        raise RuntimeError(f"only {len(rows)} usable rows for {n_train} + {n_held_out}")
    train, held_out = rows[:n_train], rows[n_train:n_train + n_held_out]
    tok = build_word_tokenizer(inputs + [t for r in rows for t in (r["label"], r["rationale"])])
    return Data(train, held_out, tok)


def build_student(preset: str, tok, seed: int):
    torch.manual_seed(seed)  # the same seed gives both trainers the same initial weights
    return PRESETS[preset].build(tok)


def dss_features(encoder: Encoder, rows: list[dict]) -> list[dict]:
    method = get_method("dss", alpha=ALPHA)
    return [encoder.encode(method, r) for r in rows]


def paper_features(dss: list[dict]) -> list[dict]:
    """The paper's tokenized columns (``input_ids``/``labels`` and ``expl_input_ids``/``aux_labels``), from the
    very same token ids as ours: only the way they are batched and run differs."""
    out = []
    for f in dss:
        (src, expl_src), (tgt, expl_tgt) = f["sources"], f["targets"]
        out.append({"input_ids": src, "attention_mask": [1] * len(src), "labels": tgt,
                    "expl_input_ids": expl_src, "expl_attention_mask": [1] * len(expl_src), "aux_labels": expl_tgt})
    return out


# -- the paper's pattern ----------------------------------------------------------------------------------------
class TaskPrefixCollator(DataCollatorForSeq2Seq):
    """The paper's ``TaskPrefixDataCollator``: the label and rationale halves padded each as its own batch.

    (The paper splits the columns with a pandas DataFrame per batch; plain dicts here, which only helps the
    baseline.)
    """

    def __call__(self, features, return_tensors=None):
        pred = [{k: f[k] for k in ("input_ids", "attention_mask", "labels")} for f in features]
        expl = [{"input_ids": f["expl_input_ids"], "attention_mask": f["expl_attention_mask"],
                 "labels": f["aux_labels"]} for f in features]
        return {"pred": super().__call__(pred, return_tensors), "expl": super().__call__(expl, return_tensors)}


class TaskPrefixTrainer(Seq2SeqTrainer):
    """The paper's ``TaskPrefixTrainer``: two forward passes per step, each computing the model's own loss."""

    def __init__(self, alpha: float, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pred_outputs = model(**inputs["pred"])
        expl_outputs = model(**inputs["expl"])
        loss = self.alpha * pred_outputs.loss + (1.0 - self.alpha) * expl_outputs.loss
        return (loss, {"pred": pred_outputs, "expl": expl_outputs}) if return_outputs else loss


def paper_arguments(cfg: TrainConfig, output_dir: Path, bf16: bool = False) -> Seq2SeqTrainingArguments:
    """``Seq2SeqTrainingArguments`` as the paper sets them for training (no evaluation or checkpoints here);
    the optimiser settings are ours, so that only the execution differs."""
    return Seq2SeqTrainingArguments(
        str(output_dir), remove_unused_columns=False, max_steps=cfg.steps, learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, per_device_train_batch_size=cfg.batch_size,
        seed=cfg.seed, bf16=bf16, use_cpu=not torch.cuda.is_available(), save_strategy="no",
        logging_strategy="no", report_to=[], disable_tqdm=True)


# -- ours -------------------------------------------------------------------------------------------------------
class ShuffledLengthGroups(torch.utils.data.Sampler):
    """:class:`LengthGroupedSampler`'s batches (each of similar lengths: little padding) in a random order.

    The Trainer's sampler sorts each mega-batch of 50 batches longest first, so a run walks from long to short
    examples again and again; shuffling the batches keeps the padding saving without that ordering.
    """

    def __init__(self, batch_size: int, lengths: list[int]):
        self.batch_size, self.lengths = batch_size, lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        order = list(LengthGroupedSampler(self.batch_size, lengths=self.lengths))
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return iter([i for b in torch.randperm(len(batches)).tolist() for i in batches[b]])


class ListDistillTrainer(DistillTrainer):
    """The library's trainer over a plain list of features: ``fit`` hands it a ``datasets.Dataset`` whose
    ``length`` column feeds the Trainer's :class:`LengthGroupedSampler`; the same sampler with the same lengths
    here, so that this file needs no ``datasets`` (GPU machines may lack it)."""

    shuffle_groups = False  # True: ShuffledLengthGroups (the ``dss-shuffled-groups`` trainer)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        size, lengths = self.args.train_batch_size * self.args.gradient_accumulation_steps, [f["length"] for f in dataset]
        if self.shuffle_groups:
            return ShuffledLengthGroups(size, lengths)
        return LengthGroupedSampler(size, dataset=dataset, lengths=lengths)


# -- measuring --------------------------------------------------------------------------------------------------
def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Clock(TrainerCallback):
    """Wall time from the end of step ``warmup`` to the end of the last step (start-up and warm-up excluded)."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        if state.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def _row_sums(mask: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Non-pad source and target lengths of a (sub-)batch, summed over rows, with the sums of squares and
    products that attention FLOPs follow (bench/gpu.py counts FLOPs from these)."""
    src, tgt = mask.sum(dim=1).double(), (labels != IGNORE).sum(dim=1).double()
    return {"enc_tokens": float(src.sum()), "dec_tokens": float(tgt.sum()), "enc_sq": float((src * src).sum()),
            "dec_sq": float((tgt * tgt).sum()), "cross": float((src * tgt).sum())}


def _add(total: dict, part: dict) -> dict:
    return {k: total.get(k, 0.0) + v for k, v in part.items()}


def dss_counts(batch: dict) -> dict[str, float]:
    """Token counts of a collated dss batch: ``tokens`` (non-pad encoder inputs + scored targets) and ``padded``
    (tokens computed, padding included, as ``forward_logits`` runs it: decoder per task at its own width)."""
    mask, labels, task_ids = batch["attention_mask"], batch["labels"], batch["task_ids"]
    sums = _row_sums(mask, labels)
    padded = mask.numel()
    for t in task_ids.unique():
        rows = labels[task_ids == t]
        padded += rows.shape[0] * int((rows != IGNORE).sum(dim=1).max())
    return {"tokens": sums["enc_tokens"] + sums["dec_tokens"], "padded": float(padded), **sums}


def paper_counts(batch: dict) -> dict[str, float]:
    """The same counts for the paper pattern's two sub-batches, each padded on its own."""
    total: dict[str, float] = {}
    for sub in batch.values():
        sums = _row_sums(sub["attention_mask"], sub["labels"])
        total = _add(total, {"tokens": sums["enc_tokens"] + sums["dec_tokens"],
                             "padded": float(sub["input_ids"].numel() + sub["labels"].numel()), **sums})
    return total


class Counted:
    """A collator wrapper that records the token counts of every batch it makes."""

    def __init__(self, collate, count):
        self.collate, self.count, self.batches = collate, count, []

    def __call__(self, features):
        batch = self.collate(features)
        self.batches.append(self.count(batch))
        return batch


def reset_peak_memory() -> int:
    """Reset the peak to now; returns the current usage in bytes (CUDA allocated, else RSS)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return reset_peak_rss() * 1024


def peak_memory() -> int:
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else rss_kib("VmHWM") * 1024


@torch.no_grad()
def held_out_loss(model, collate: Collator, features: list[dict]) -> float:
    """The dss objective (alpha * label CE + (1 - alpha) * rationale CE, token means) on a fixed batch."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate(features).items()}
    loss = get_method("dss", alpha=ALPHA).loss(forward_logits(model, batch), batch, causal=False).loss
    model.train(was)
    return float(loss)


@dataclass
class Setup:
    """What one student's comparison needs: data, features, the config both trainers follow."""

    preset: str
    data: Data
    cfg: TrainConfig
    dss: list[dict] = field(default_factory=list)
    paper: list[dict] = field(default_factory=list)
    held_out: list[dict] = field(default_factory=list)

    @classmethod
    def make(cls, preset: str, data: Data, *, steps: int, batch_size: int, bf16: bool = False) -> Setup:
        cfg = TrainConfig(task="wordproblems", method="dss", student=preset, teacher="builtin", steps=steps,
                          batch_size=batch_size, alpha=ALPHA, save_every=10 * steps,
                          bf16="true" if bf16 else "false").resolved()
        encoder = Encoder(data.tokenizer, causal=False, max_input_len=cfg.max_input_len,
                          max_target_len=cfg.max_target_len)
        dss = dss_features(encoder, data.train)
        return cls(preset, data, cfg, dss, paper_features(dss), dss_features(encoder, data.held_out))

    def collator(self, model) -> Collator:
        return Collator(self.data.tokenizer.pad_token_id, causal=False,
                        decoder_start_id=model.config.decoder_start_token_id,
                        pad_to_multiple_of=8 if torch.cuda.is_available() else None)


TRAINERS = {"paper": "paper pattern (2 passes, random order)",
            "dss": "ours (dss, as the library trains: random order, same examples per step as the paper pattern)",
            "dss-grouped": "ours, length-grouped batches (--group-by-length)"}
# Not run by default (--trainers): a candidate for the library, length-grouped batches in a random order.
EXTRA_TRAINERS = {"dss-shuffled-groups": "ours, length-grouped batches in random order"}


def make_trainer(kind: str, setup: Setup, model, seed: int, out: Path, callbacks: list):
    """One of :data:`TRAINERS` over ``model``; returns (trainer, token counter).

    ``dss`` is the library's trainer with its default random sampler: with the same seed it sees the same
    examples at each step as the paper pattern (both use accelerate's seedable sampler), so its loss must match
    the baseline's, and its speed isolates what the execution pattern alone (one encoder pass, per-task decoder
    widths) is worth. ``dss-grouped`` adds length-grouped batches (``group_by_length=True``).
    """
    cfg = setup.cfg.with_(seed=seed)
    if kind.startswith("paper"):  # "paper-bf16" (bench/gpu.py): the paper's own --bf16 flag
        counted = Counted(TaskPrefixCollator(tokenizer=setup.data.tokenizer, model=model), paper_counts)
        trainer = TaskPrefixTrainer(alpha=ALPHA, model=model,
                                    args=paper_arguments(cfg, out, bf16=kind == "paper-bf16"),
                                    train_dataset=setup.paper, data_collator=counted,
                                    processing_class=setup.data.tokenizer, callbacks=callbacks)
    else:
        counted = Counted(setup.collator(model), dss_counts)
        args = training_arguments(cfg, out)
        if kind in ("dss-grouped", "dss-shuffled-groups"):
            args = dataclasses.replace(args, train_sampling_strategy="group_by_length")
        trainer = ListDistillTrainer(model=model, args=args, train_dataset=setup.dss,
                                     data_collator=counted, processing_class=setup.data.tokenizer,
                                     callbacks=callbacks, method=get_method("dss", alpha=ALPHA), causal=False)
        trainer.shuffle_groups = kind == "dss-shuffled-groups"
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer, counted


def run_once(kind: str, setup: Setup, seed: int, warmup: int, work: Path) -> dict:
    """Train a fresh student for ``setup.cfg.steps`` steps with one trainer; the figures of that run."""
    model = build_student(setup.preset, setup.data.tokenizer, seed)
    if torch.cuda.is_available():
        model = model.cuda()
    clock = Clock(warmup)
    trainer, counted = make_trainer(kind, setup, model, seed, work / f"{kind}-{seed}", [clock])
    before = reset_peak_memory()
    trainer.train()
    _sync()
    peak = peak_memory()
    steps = setup.cfg.steps
    timed = counted.batches[warmup:steps]  # the batches of the timed steps
    seconds = clock.end - clock.start
    counts: dict[str, float] = {}
    for c in timed:
        counts = _add(counts, c)
    return {"trainer": kind, "seed": seed, "steps": steps, "timed_steps": len(timed), "seconds": seconds,
            "examples_per_s": len(timed) * setup.cfg.batch_size / seconds,
            "tokens_per_s": counts["tokens"] / seconds, "counts": counts,
            "padding_overhead": counts["padded"] / counts["tokens"] - 1, "peak_memory_mb": peak / 2**20,
            "peak_above_start_mb": (peak - before) / 2**20,
            "held_out_loss": held_out_loss(model, setup.collator(model), setup.held_out)}


def same_batch_check(setup: Setup, seed: int = 0) -> dict:
    """One batch, the same weights: the paper's two-pass loss and ours, with their gradients (dropout off)."""
    feats = setup.dss[: setup.cfg.batch_size]
    model = build_student(setup.preset, setup.data.tokenizer, seed)
    model.eval()
    paper = TaskPrefixCollator(tokenizer=setup.data.tokenizer, model=model)(paper_features(feats))
    loss_p = ALPHA * model(**paper["pred"]).loss + (1 - ALPHA) * model(**paper["expl"]).loss
    grads_p = torch.autograd.grad(loss_p, list(model.parameters()), allow_unused=True)
    batch = setup.collator(model)(feats)
    loss_d = get_method("dss", alpha=ALPHA).loss(forward_logits(model, batch), batch, causal=False).loss
    grads_d = torch.autograd.grad(loss_d, list(model.parameters()), allow_unused=True)
    diff = max(float((a - b).abs().max()) for a, b in zip(grads_p, grads_d) if a is not None and b is not None)
    loss_p, loss_d = loss_p.item(), loss_d.item()
    return {"paper_loss": loss_p, "dss_loss": loss_d, "loss_abs_diff": abs(loss_p - loss_d),
            "grad_max_abs_diff": diff}


def compare(setup: Setup, reps: int, warmup: int, work: Path, log=print, kinds: tuple[str, ...] = tuple(TRAINERS)
            ) -> dict:
    """Alternate the trainers (rotating their order each repetition) over ``reps`` seeds, after one untimed
    warm-up run of each."""
    kinds = list(kinds)
    short = dataclasses.replace(setup, cfg=setup.cfg.with_(steps=warmup + 2))
    for kind in kinds:
        run_once(kind, short, 0, warmup, work)
    runs = []
    for rep in range(reps):
        for kind in kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]:
            r = run_once(kind, setup, rep, warmup, work)
            log(f"  {setup.preset:5} seed {rep} {kind:14}: {r['examples_per_s']:8.1f} ex/s "
                f"{r['tokens_per_s']:9.0f} tok/s  peak {r['peak_memory_mb']:7.1f} MB  "
                f"held-out loss {r['held_out_loss']:.4f}")
            runs.append(r)
    return summarise(setup, runs, kinds)


def summarise(setup: Setup, runs: list[dict], kinds: list[str]) -> dict:
    """Medians per trainer; speed-up and held-out loss of each trainer against ``paper``."""
    med = {}
    for kind in kinds:
        mine = [r for r in runs if r["trainer"] == kind]
        med[kind] = {k: statistics.median(r[k] for r in mine)
                     for k in ("examples_per_s", "tokens_per_s", "padding_overhead", "peak_memory_mb",
                               "peak_above_start_mb", "held_out_loss")}
        losses = [r["held_out_loss"] for r in mine]
        med[kind]["held_out_loss_seed_range"] = [min(losses), max(losses)]
    by_seed: dict[int, dict] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], {})[r["trainer"]] = r
    base = med["paper"]
    out = {"student": setup.preset, "steps": setup.cfg.steps, "batch_size": setup.cfg.batch_size,
           "training_rows": len(setup.dss), "reps": len(by_seed), "median": med, "runs": runs}
    for kind in (k for k in kinds if k != "paper"):
        out[kind] = {
            "speedup": med[kind]["examples_per_s"] / base["examples_per_s"],
            "speedup_per_seed": [s[kind]["examples_per_s"] / s["paper"]["examples_per_s"] for s in by_seed.values()],
            "held_out_loss_rel_gap": med[kind]["held_out_loss"] / base["held_out_loss"] - 1,
            # same seed, same initial weights: how far apart the two runs end, seed by seed
            "held_out_loss_max_rel_diff_per_seed": max(
                abs(s[kind]["held_out_loss"] / s["paper"]["held_out_loss"] - 1) for s in by_seed.values()),
        }
    return out


# -- report -----------------------------------------------------------------------------------------------------
def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPU cores (load average {load}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s)")


def render_md(result: dict) -> str:
    lines = [f"# Training throughput: dss vs the paper's TaskPrefixTrainer ({result['machine']})", "",
             "Medians over seeds (one seed per repetition, the trainers' order rotating); tokens = non-pad tokens "
             "processed (encoder inputs + scored targets); padding overhead = padded tokens computed / non-pad "
             "tokens - 1.", "",
             "| student | trainer | examples/s | tokens/s | padding overhead | peak memory, MB (above start) | "
             "held-out loss, median (seed range) |", "|---|---|---|---|---|---|---|"]
    labels = {**TRAINERS, **EXTRA_TRAINERS}
    for s in result["students"]:
        for kind in s["median"]:
            m, label = s["median"][kind], labels[kind]
            lo, hi = m["held_out_loss_seed_range"]
            lines.append(f"| {s['student']} ({s['parameters']:,} params) | {label} | {m['examples_per_s']:.1f} | "
                         f"{m['tokens_per_s']:,.0f} | {m['padding_overhead']:.0%} | {m['peak_memory_mb']:.0f} "
                         f"(+{m['peak_above_start_mb']:.0f}) | {m['held_out_loss']:.4f} ({lo:.4f}–{hi:.4f}) |")
    lines += ["", "| student | trainer | speed-up vs paper (examples/s) | per seed | held-out loss vs paper: "
              "medians / worst seed | goal |", "|---|---|---|---|---|---|"]
    for s in result["students"]:
        for kind in (k for k in s["median"] if k != "paper"):
            c = s[kind]
            lines.append(f"| {s['student']} | {kind} | {c['speedup']:.2f}x | "
                         f"{', '.join(f'{x:.2f}' for x in c['speedup_per_seed'])} | "
                         f"{c['held_out_loss_rel_gap']:+.2%} / {c['held_out_loss_max_rel_diff_per_seed']:.2%} | "
                         f"{'>= ' + str(result['goal']) + 'x' if kind == 'dss' else ''} |")
    lines += ["", "Same batch, same weights (dropout off): paper two-pass loss vs ours: " + "; ".join(
        f"{s['student']}: |Δloss| {s['same_batch']['loss_abs_diff']:.1e}, max |Δgrad| "
        f"{s['same_batch']['grad_max_abs_diff']:.1e}" for s in result["students"]), "",
        "Steps per run: " + ", ".join(f"{s['student']} {s['steps']}" for s in result["students"]) +
        f", batch {result['batch_size']}, the first {result['warmup']} steps not timed. Peak memory: " +
        ("CUDA max allocated." if torch.cuda.is_available() else
         "peak RSS of the process during the run (reset before each run)."),
        "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


# Sized for ~3 min (tiny) and ~6 min (small) on 2 CPU cores.
DEFAULT_STEPS, DEFAULT_REPS = {"tiny": 60, "small": 20, "base": 10}, {"tiny": 5, "small": 3, "base": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (tiny student, few steps)")
    parser.add_argument("--students", default="tiny,small", help="comma-separated presets")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per run (default per student: {DEFAULT_STEPS})")
    parser.add_argument("--warmup", type=int, default=5, help="first steps of each run not timed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=None,
                        help=f"repetitions (seeds) per trainer (default per student: {DEFAULT_REPS})")
    parser.add_argument("--rows", type=int, default=2000, help="training rows")
    parser.add_argument("--trainers", default=",".join(TRAINERS),
                        help=f"comma-separated, 'paper' first; also: {', '.join(EXTRA_TRAINERS)}")
    parser.add_argument("--goal", type=float, default=1.5, help="speed-up goal, for the table")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for throughput.json/.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.students, args.steps, args.warmup, args.reps, args.rows, args.batch_size = "tiny", 6, 2, 2, 64, 8
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar at each checkpoint
    data = wordproblem_data(args.rows, n_held_out=64 if args.smoke else 256)
    students = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        for preset in args.students.split(","):
            steps = args.steps or DEFAULT_STEPS.get(preset, 20)
            setup = Setup.make(preset, data, steps=steps, batch_size=args.batch_size)
            summary = compare(setup, args.reps or DEFAULT_REPS.get(preset, 3), args.warmup, Path(tmp),
                              kinds=tuple(args.trainers.split(",")))
            summary["parameters"] = count_parameters(build_student(preset, data.tokenizer, 0))
            summary["same_batch"] = same_batch_check(setup)
            students.append(summary)
    result = {"machine": machine(), "smoke": args.smoke, "warmup": args.warmup, "batch_size": args.batch_size,
              "goal": args.goal, "students": students,
              "command": " ".join([".venv/bin/python bench/throughput.py",
                                   *(argv if argv is not None else sys.argv[1:])])}
    write_results(args.out, "throughput", result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
