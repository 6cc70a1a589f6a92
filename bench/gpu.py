"""GPU throughput and MFU: the T5-v1.1-base-sized ``base`` student with bf16, against the paper's pattern.

    python bench/gpu.py                  # on a CUDA machine (H100/H200; never in CI); writes bench/results/gpu.json/.md
    python bench/gpu.py --batch-size 512 --steps 40 --reps 3   # bigger steps: higher MFU
    python bench/gpu.py --smoke          # seconds, on CPU, tiny sizes (used by the tests)

Needs only torch, transformers and accelerate (plus this repository): GPU machines may lack ``datasets`` and
``gradio``, so the data are the built-in word problems answered by the builtin teacher in a throwaway SQLite
workspace, and our trainer is the library's ``DistillTrainer`` over a plain list (see ``bench/throughput.py``,
whose harness this script reuses).

Trainers, alternating over seeds, same student, data, steps and optimiser settings:
* ``paper``: the paper's ``TaskPrefixTrainer`` pattern as it runs by default: fp32, two forward passes per step,
  random order (``DataCollatorForSeq2Seq`` padding each sub-batch);
* ``paper-bf16``: the same with the paper's ``--bf16`` flag, to show what bf16 alone is worth;
* ``dss``: ours as the library trains on a GPU (bf16, one encoder pass, per-task decoder widths, length-grouped
  batches, padding to a multiple of 8).

MFU = model FLOPs per second over the card's peak (``--peak-tflops``, 790 TFLOP/s bf16 measured on H100 by
default). Model FLOPs of a step are counted from its non-pad tokens: 6 x (encoder parameters x source tokens +
(decoder + LM head parameters) x target tokens) for the matmuls, plus attention: 12 x d_attn x layers x
(source^2 for encoder self-attention, target^2 for decoder self-attention, target x source for cross-attention),
summed over rows. Padding is not counted: it is work, not model FLOPs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as tp  # noqa: E402  (bench/throughput.py: the shared harness)
from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

KINDS = ("paper", "paper-bf16", "dss")


def flop_coefficients(model) -> dict[str, float]:
    """Per-token and per-attention-pair training FLOP factors of a T5 model (embedding lookups are free)."""
    def params(module) -> int:
        return sum(p.numel() for n, p in module.named_parameters() if "embed_tokens" not in n)

    cfg = model.config
    d_attn = cfg.num_heads * cfg.d_kv
    return {"enc_tokens": 6.0 * params(model.encoder),
            "dec_tokens": 6.0 * (params(model.decoder) + cfg.d_model * cfg.vocab_size),  # + LM head
            "enc_sq": 12.0 * d_attn * cfg.num_layers, "dec_sq": 12.0 * d_attn * cfg.num_decoder_layers,
            "cross": 12.0 * d_attn * cfg.num_decoder_layers}


def model_flops(counts: dict[str, float], coeff: dict[str, float]) -> float:
    return sum(coeff[k] * counts[k] for k in coeff)


def render_md(result: dict) -> str:
    lines = [f"# GPU throughput and MFU ({result['machine']})", "",
             f"`{result['preset']}` student ({result['parameters']:,} params), batch {result['batch_size']} "
             f"examples (x2 sequences), {result['steps']} steps per run ({result['warmup']} not timed), medians "
             f"over {result['reps']} seeds; MFU over {result['peak_tflops']:g} TFLOP/s.", "",
             "| trainer | examples/s | tokens/s | model TFLOP/s | MFU | padding overhead | peak memory (GB) | "
             "held-out loss |", "|---|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        m = result["median"][kind]
        lines.append(f"| {kind} | {m['examples_per_s']:.1f} | {m['tokens_per_s']:,.0f} | {m['tflops']:.3g} | "
                     f"{m['mfu']:.1%} | {m['padding_overhead']:.0%} | {m['peak_memory_mb'] / 1024:.1f} | "
                     f"{m['held_out_loss']:.4f} |")
    s = result["summary"]
    lines += ["", "| measure | value | goal |", "|---|---|---|",
              f"| MFU, dss | {result['median']['dss']['mfu']:.1%} | >= 40% |",
              f"| speed-up dss vs paper (fp32, its default) | {s['dss']['speedup']:.2f}x | >= 2x |",
              f"| speed-up dss vs paper with --bf16 | {s['dss']['speedup'] / s['paper-bf16']['speedup']:.2f}x | |",
              "", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds on CPU: tiny student, few steps")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="first steps of each run not timed")
    parser.add_argument("--batch-size", type=int, default=256, help="examples per step (dss: 2 sequences each)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--rows", type=int, default=4000, help="training rows")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the card's bf16 peak, TFLOP/s")
    parser.add_argument("--out", default=str(tp.ROOT / "bench" / "results"), help="folder for gpu.json/.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.steps, args.warmup, args.batch_size, args.reps, args.rows = "tiny", 2, 1, 8, 1, 64
    elif not torch.cuda.is_available():
        parser.error("no CUDA device: this benchmark is for a GPU machine (use --smoke to check it on CPU)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    data = tp.wordproblem_data(args.rows, n_held_out=64 if args.smoke else 256)
    setup = tp.Setup.make(args.preset, data, steps=args.steps, batch_size=args.batch_size, bf16=bf16)
    model = tp.build_student(args.preset, data.tokenizer, 0)
    coeff = flop_coefficients(model)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        summary = tp.compare(setup, args.reps, args.warmup, Path(tmp), kinds=KINDS)
    median = summary["median"]
    for kind in KINDS:
        mine = [r for r in summary["runs"] if r["trainer"] == kind]
        tflops = [model_flops(r["counts"], coeff) / r["seconds"] / 1e12 for r in mine]
        median[kind]["tflops"] = statistics.median(tflops)
        median[kind]["mfu"] = median[kind]["tflops"] / args.peak_tflops
    result = {"machine": tp.machine(), "smoke": args.smoke, "preset": args.preset,
              "parameters": tp.count_parameters(model), "batch_size": args.batch_size, "steps": args.steps,
              "warmup": args.warmup, "reps": args.reps, "peak_tflops": args.peak_tflops, "bf16": bf16,
              "flop_coefficients": coeff, "median": median,
              "summary": {k: summary[k] for k in KINDS if k != "paper"}, "runs": summary["runs"],
              "command": " ".join(["python bench/gpu.py", *(argv if argv is not None else sys.argv[1:])])}
    write_results(args.out, "gpu", result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
