"""The pretrained student on a CPU: tokens/s of SmolLM2-135M trained with ``dss`` — full fine-tuning, LoRA, the
15-layer subset — next to a plain HF ``Trainer`` doing the paper's two passes, on the same rows; and (``--learn``)
whether it learns: ``standard`` vs ``dss`` accuracy after a short run on 12.5% of the built-in word problems.

    .venv/bin/python bench/pretrained.py            # throughput; writes bench/results/pretrained.json and .md
    .venv/bin/python bench/pretrained.py --learn    # the learning check instead (~30 min on 2 cores);
                                                    # writes bench/results/pretrained-learn.json and .md
    .venv/bin/python bench/pretrained.py --smoke [--learn]   # seconds: a tiny random Llama (used by the tests)

Every variant trains the same rows in the same order (the built-in word problems with the builtin teacher's
rationales, same seed, batch 8, lr 1e-4, AdamW), as the same token ids (question, then ``[label] =>`` or
``[rationale] =>``, then the target). ``paper`` is a plain ``transformers.Trainer`` whose ``compute_loss`` runs the
label and the rationale sub-batches as two forward passes, each padded on its own and given ``labels=`` so the model
computes its own loss (the paper's ``TaskPrefixTrainer`` pattern, for a decoder-only model); ``paper-lora`` is the
same with LoRA r8. The others are the library's ``DistillTrainer`` as :func:`workbench.distill.trainer.fit` builds
it: one packed row per example (the question computed once, each task masked from the other), the output layer only
at target tokens. ``unpacked`` is ours with the question computed twice (each task at its own width, the output
layer still only at targets), to show what each half is worth. tokens/s counts the real tokens of the two-pass
layout (prompts and targets of both tasks), the same work for every variant. Each step is timed on its own;
figures are medians over the timed steps, because the 2 cores are shared with other work and single steps vary.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import reset_peak_rss, rss_kib, write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.core.store import Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.distill.config import TrainConfig  # noqa: E402
from workbench.distill.encoding import Collator, Encoder, target_logits  # noqa: E402
from workbench.distill.lora import trainable_parameters  # noqa: E402
from workbench.distill.losses import IGNORE  # noqa: E402
from workbench.distill.methods import get_method  # noqa: E402
from workbench.distill.students import Student, make_student  # noqa: E402
from workbench.distill.trainer import DistillTrainer, prepare_for_training, training_arguments  # noqa: E402
from workbench.models import catalog as pretrained  # noqa: E402
from workbench.models.loading import count_parameters, save_random_checkpoint  # noqa: E402
from workbench.rationales.generation import generate_rationales  # noqa: E402
from workbench.rationales.teachers import get_teacher  # noqa: E402
from workbench.rationales.trainingset import build_training_set  # noqa: E402

ALPHA = 0.5
VARIANTS = {"paper": "plain HF Trainer, two passes (the paper's pattern)",
            "full": "ours: packed rows, output layer at targets", "unpacked": "ours, the question computed twice",
            "paper-lora": "plain HF Trainer, two passes, LoRA r8", "lora": "ours, LoRA r8 (q/k/v/o/gate/up/down)",
            "subset": "ours, layer subset (15 of 30 layers)"}


def wordproblem_rows(n: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-rows-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        task = load_task("wordproblems", store, n_train=int(1.4 * n) + 16, n_valid=1, n_test=1)
        generate_rationales(store, task, get_teacher("builtin"))
        rows = build_training_set(store, task, "builtin").rows[:n]
        store.close()
    return rows


# -- the baselines and variants ---------------------------------------------------------------------------------
class TwoPassCollator:
    """The label and the rationale segments, each padded as a batch of its own (``DataCollatorForSeq2Seq``)."""

    def __init__(self, tokenizer):
        self.pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)

    def __call__(self, features):
        out = {}
        for task, key in ((0, "pred"), (1, "expl")):
            rows = [{"input_ids": f["sources"][task] + f["targets"][task],
                     "labels": [IGNORE] * len(f["sources"][task]) + f["targets"][task]} for f in features]
            out[key] = self.pad([{**r, "attention_mask": [1] * len(r["input_ids"])} for r in rows])
        return out


class TwoPassTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pred, expl = model(**inputs["pred"], use_cache=False), model(**inputs["expl"], use_cache=False)
        loss = ALPHA * pred.loss + (1 - ALPHA) * expl.loss
        return (loss, {"pred": pred, "expl": expl}) if return_outputs else loss


class StepClock(TrainerCallback):
    def __init__(self):
        self.started, self.seconds = 0.0, []

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.started)


class Counted:
    """Records the real tokens of every batch a collator makes, and the token slots the model computes."""

    def __init__(self, collate, per_task_width: bool = False):
        self.collate, self.per_task_width, self.tokens, self.slots = collate, per_task_width, [], []

    def __call__(self, features):
        self.tokens.append(sum(len(s) + len(g) for f in features for s, g in zip(f["sources"], f["targets"])))
        batch = self.collate(features)
        if "segment_ids" in batch:  # packed: one row per example
            self.slots.append(batch["input_ids"].numel())
        elif self.per_task_width:  # forward_logits: each task's rows cut to their longest sequence
            lengths, tasks = batch["attention_mask"].sum(dim=1), batch["task_ids"]
            self.slots.append(sum(int(lengths[tasks == t].max()) * int((tasks == t).sum()) for t in tasks.unique()))
        else:
            subs = [batch[k] for k in ("pred", "expl")] if "pred" in batch else [batch]
            self.slots.append(sum(b["input_ids"].numel() for b in subs))
        return batch


def release_memory() -> None:
    """Hand the previous variant's freed memory back to the OS, so the next one's RSS starts from its own."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def load(model: str, subset: int | None) -> Student:
    student = make_student(model)
    if subset:
        student.model = pretrained.layer_subset(student.model, subset)
    return student


def run_variant(kind: str, model: str, features: list[dict], cfg: TrainConfig, subset: int, work: Path) -> dict:
    release_memory()
    student = load(model, subset if kind == "subset" else None)
    cfg = cfg.with_(lora_rank=8 if kind in ("lora", "paper-lora") else 0)
    prepare_for_training(student, cfg)  # LoRA adapters, no KV cache
    clock = StepClock()
    args = dataclasses.replace(training_arguments(cfg, work / kind), save_strategy="no")
    tok, method = student.tokenizer, get_method("dss", alpha=ALPHA)
    common = {"model": student.model, "args": args, "train_dataset": features, "processing_class": tok,
              "callbacks": [clock]}
    if kind in ("paper", "paper-lora"):
        counted = Counted(TwoPassCollator(tok))
        trainer = TwoPassTrainer(data_collator=counted, **common)
    else:
        counted = Counted(Collator(tok.pad_token_id, causal=True, pack=kind != "unpacked"), per_task_width=True)
        trainer = DistillTrainer(data_collator=counted, method=method, causal=True, **common)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    loaded_kib = reset_peak_rss()  # the model is loaded: what training adds is optimizer state, gradients, activations
    trainer.train()
    peak_mb, added_mb = rss_kib("VmHWM") / 1024, (rss_kib("VmHWM") - loaded_kib) / 1024
    warm = 1  # the first step pays for allocations and the first kernels
    per_step = [t / s for t, s in zip(counted.tokens[warm:cfg.steps], clock.seconds[warm:])]
    return {"variant": kind, "label": VARIANTS[kind], "timed_steps": len(per_step), "step_seconds": clock.seconds[warm:],
            "step_tokens_per_s": per_step, "load_average": os.getloadavg()[0],
            "s_per_step": statistics.median(clock.seconds[warm:]), "s_per_step_min": min(clock.seconds[warm:]),
            "tokens_per_s": statistics.median(per_step), "tokens_per_step": statistics.median(counted.tokens),
            "padding_overhead": sum(counted.slots) / sum(counted.tokens) - 1, "peak_rss_mb": round(peak_mb),
            "training_memory_mb": round(added_mb),
            "parameters": count_parameters(student.model), "trainable": trainable_parameters(student.model),
            "layers": student.model.config.num_hidden_layers if "lora" not in kind else
            student.model.base_model.model.config.num_hidden_layers}


def merge_rounds(runs: list[dict]) -> dict:
    """One variant's figures over all its rounds: medians over every timed step, the worst peak memory."""
    seconds = [t for r in runs for t in r["step_seconds"]]
    rates = [x for r in runs for x in r["step_tokens_per_s"]]
    return {**runs[0], "rounds": len(runs), "timed_steps": len(seconds), "step_seconds": seconds,
            "step_tokens_per_s": rates, "s_per_step": statistics.median(seconds), "s_per_step_min": min(seconds),
            "tokens_per_s": statistics.median(rates), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "training_memory_mb": max(r["training_memory_mb"] for r in runs),
            "load_average": [r["load_average"] for r in runs],
            "padding_overhead": statistics.median(r["padding_overhead"] for r in runs)}


def same_batch_losses(model: str, features: list[dict]) -> dict:
    """One batch, the same weights: the two-pass loss, ours (packed, output layer at targets) and ours unpacked."""
    student = load(model, None)
    student.model.eval()
    student.model.config.use_cache = False
    tok, method = student.tokenizer, get_method("dss", alpha=ALPHA)
    with torch.no_grad():
        two = TwoPassCollator(tok)(features)
        paper = float(ALPHA * student.model(**two["pred"]).loss + (1 - ALPHA) * student.model(**two["expl"]).loss)
        packed = Collator(tok.pad_token_id, causal=True)(features)
        ours = float(method.target_loss(*target_logits(student.model, packed, True)).loss)
        unpacked = Collator(tok.pad_token_id, causal=True, pack=False)(features)
        apart = float(method.target_loss(*target_logits(student.model, unpacked, True)).loss)
    return {"paper": paper, "full": ours, "unpacked": apart, "max_abs_diff": max(abs(x - paper) for x in (ours, apart))}


# -- the learning check -----------------------------------------------------------------------------------------
def learning_check(model: str, args, log=print) -> dict:
    """``standard`` vs ``dss`` (and dss with LoRA / the layer subset) through the library, on a fraction of the
    built-in word problems, scored on the first test problems (numbers as text: a pretrained student)."""
    from workbench.distill.runs import train_student

    cases = [("standard", model, 0), ("dss", model, 0)] + [(m, s, r) for m, s, r in args.learn_extra]
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-learn-") as tmp:
        store = Store.open(Path(tmp) / "ws")
        sizes = {"n_train": 64, "n_valid": 4, "n_test": 8} if args.smoke else {}
        task = load_task("wordproblems", store, **sizes)
        generate_rationales(store, task, get_teacher("builtin"))
        for method, student, rank in cases:
            cfg = TrainConfig(task="wordproblems", method=method, student=student, lora_rank=rank,
                              teacher=None if method == "standard" else "builtin", fraction=args.fraction,
                              steps=args.learn_steps, batch_size=args.batch_size, learning_rate=1e-4, eval_every=0,
                              test_limit=args.learn_test, predict_rationales=False, save_every=10 * args.learn_steps)
            r = train_student(store, cfg)
            log(f"  learn {method:8} {student:20} lora {rank}: accuracy {r['accuracy']:.2f} on {r['n_test']} "
                f"({r['training_rows']} rows, {r['train_seconds']:.0f} s, {r['s_per_step']} s/step)")
            out.append({"method": method, "student": student, "lora_rank": rank, "accuracy": r["accuracy"],
                        "n_test": r["n_test"], "parse_errors": r["parse_errors"], "training_rows": r["training_rows"],
                        "steps": r["steps"], "train_seconds": r["train_seconds"], "s_per_step": r["s_per_step"]})
        store.close()
    return {"runs": out, "steps": args.learn_steps, "fraction": args.fraction, "batch_size": args.batch_size}


# -- report -----------------------------------------------------------------------------------------------------
def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} threads, load average {load} (shared)"


def render_md(result: dict) -> str:
    lines = [f"# Pretrained student ({result['model']}) on a CPU", "",
             f"dss, batch {result['batch_size']}, {result['steps']} steps per variant and round (the first not timed), "
             f"{result['rounds']} rounds in rotated orders, the same {result['rows']} rows in the same order. "
             f"{result['machine_start']} at the start, "
             f"{result['machine_end']} at the end: the cores are shared with other work, so figures are medians "
             "over steps and single steps vary.", "",
             "| variant | layers | trainable params | s/step, median (best) | two-pass tokens/s | positions computed vs two-pass tokens | memory for "
             "training | vs paper |", "|---|---|---|---|---|---|---|---|"]
    base = result["variants"]["paper"]["tokens_per_s"]
    for v in result["variants"].values():
        lines.append(f"| {v['label']} | {v['layers']} | {v['trainable']:,} | {v['s_per_step']:.2f} "
                     f"({v['s_per_step_min']:.2f}) | {v['tokens_per_s']:.0f} | {v['padding_overhead']:.0%} | "
                     f"{v['training_memory_mb']:,} MB | {v['tokens_per_s'] / base:.2f}x |")
    sb = result["same_batch"]
    lines += ["", "Memory for training: peak RSS while training above the RSS with the model loaded (optimizer "
              "state, gradients, activations); the worst round.",
              "", f"Same batch, same weights: loss two-pass {sb['paper']:.5f}, ours packed {sb['full']:.5f}, ours "
              f"unpacked {sb['unpacked']:.5f} (max |Δ| {sb['max_abs_diff']:.1e}).",
              "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def render_learn_md(result: dict) -> str:
    runs = result["runs"]
    lines = [f"# Pretrained student ({result['model']}): does it learn? {runs[0]['training_rows']} rows "
             f"({result['fraction']:.1%} of the built-in word problems), {result['steps']} steps of batch "
             f"{result['batch_size']}", "",
             f"lr 1e-4 (the pretrained recipe), numbers as text, the builtin teacher's rationales for dss; test accuracy "
             f"on the first {runs[0]['n_test']} test problems. {result['machine_start']} at the start, "
             f"{result['machine_end']} at the end (shared cores: times are indicative).", "",
             "| method | student | LoRA rank | test accuracy | parse errors | train time | s/step |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['method']} | {r['student']} | {r['lora_rank'] or '-'} | {r['accuracy']:.2f} "
                     f"(n={r['n_test']}) | {r['parse_errors']} | {r['train_seconds']:.0f} s | {r['s_per_step']} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds: a tiny random Llama, 3 steps")
    parser.add_argument("--model", default="smollm2-135m", help="catalog name or checkpoint folder (causal)")
    parser.add_argument("--subset", type=int, default=15, help="layers of the layer-subset variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=5, help="steps per variant and round (the first not timed)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds over the variants, each in a rotated order (figures: medians over all rounds)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default; 1 is steadier on cores shared with other work)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--learn", action="store_true",
                        help="the learning check instead of the throughput (train_student, ~30 min)")
    parser.add_argument("--learn-steps", type=int, default=60)
    parser.add_argument("--learn-test", type=int, default=100, help="test problems scored")
    parser.add_argument("--fraction", type=float, default=0.125, help="of the built-in training rows")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for pretrained.json/.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tmp = tempfile.TemporaryDirectory(prefix="bench-pretrained-")
    if args.smoke:
        args.model = save_random_checkpoint(Path(tmp.name) / "tiny-llama", "causal", layers=4)
        args.subset, args.steps, args.rows, args.batch_size, args.rounds = 2, 3, 16, 4, 1
        args.learn_steps, args.learn_test, args.fraction = 2, 4, 0.5
    args.learn_extra = [("dss", args.model, 8)] + (
        [("dss", f"{args.model}-l15", 0)] if f"{args.model}-l15" in pretrained.MODELS else [])
    given = list(argv if argv is not None else sys.argv[1:])
    if "--out" in given:  # a temporary folder is no part of the command to repeat
        del given[given.index("--out"):given.index("--out") + 2]
    command = " ".join(["python bench/pretrained.py", *given])
    started = machine()
    name = "SmolLM2-135M-Instruct" if args.model == "smollm2-135m" else Path(args.model).name
    if args.learn:
        result = {"model": name, "machine_start": started, **learning_check(args.model, args), "command": command}
        result["machine_end"] = machine()
        write_results(args.out, "pretrained-learn", result, render_learn_md)
        tmp.cleanup()
        return 0
    rows = wordproblem_rows(args.rows)
    tok = make_student(args.model).tokenizer
    # The library's layout for a causal student: the question first, so both tasks can share it.
    features = [Encoder(tok, causal=True, layout="marker-last").encode(get_method("dss", alpha=ALPHA), r) for r in rows]
    cfg = TrainConfig(task="wordproblems", method="dss", student=args.model, teacher="builtin", steps=args.steps,
                      batch_size=args.batch_size, learning_rate=1e-4, eval_every=0, save_every=10 * args.steps,
                      bf16="false")
    kinds, runs = args.variants.split(","), []
    for r in range(args.rounds):
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
            runs.append(run_variant(kind, args.model, features, cfg, args.subset, Path(tmp.name)))
            v = runs[-1]
            print(f"  round {r} {kind:9} {v['s_per_step']:6.2f} s/step (best {v['s_per_step_min']:.2f})  "
                  f"{v['tokens_per_s']:6.0f} tokens/s  padding {v['padding_overhead']:.0%}  load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    variants = {kind: merge_rounds([v for v in runs if v["variant"] == kind]) for kind in kinds}
    result = {"model": name, "steps": args.steps, "rounds": args.rounds, "batch_size": args.batch_size, "rows": len(rows), "smoke": args.smoke,
              "machine_start": started, "variants": variants,
              "same_batch": same_batch_losses(args.model, features[: args.batch_size]), "command": command}
    result["machine_end"] = machine()
    write_results(args.out, "pretrained", result, render_md)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
