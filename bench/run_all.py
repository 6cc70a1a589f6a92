"""Run every benchmark and collect their results: what ``make bench`` runs.

    .venv/bin/python bench/run_all.py            # full mode (hours on 2 CPU cores, most of it the 3-seed
                                                 # sweeps); bench/results/summary.{json,md}
    .venv/bin/python bench/run_all.py --only throughput,first_result
    .venv/bin/python bench/run_all.py --smoke    # each script in seconds, into a temporary folder (or --out)

Each script runs in its own process (a clean interpreter: one benchmark's memory or threads never colour the
next), one after the other so that they never share the cores. ``gpu.py`` runs only where CUDA is available (and
in ``--smoke`` mode, on CPU). A failing script is recorded with its exit code and the others still run; the exit
code is non-zero when any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("throughput", "precision", "number_slots", "data_efficiency", "first_result", "teachers", "pretrained", "profile_cell",
           "classroom", "sweeps", "sweeps_alpha0.3", "sweeps_alpha0.7", "sweeps_wordproblems", "gpu")
# A name that runs a script with arguments (the grids of the trustworthy-claim measurements, 3 seeds each).
SVAMP_E2 = ["--grid", "svamp", "--seeds", "0,1,2", "--epochs", "2"]
VARIANTS = {"sweeps_wordproblems": ("sweeps", ["--grid", "wordproblems", "--students", "smollm2-135m",
                                               "--rows", "16,32,64,128,256", "--seeds", "0,1,2"]),
            "sweeps": ("sweeps", [*SVAMP_E2, "--fractions", "0.25,0.5,1", "--tag", "e2-3seeds"]),
            **{f"sweeps_alpha{a}": ("sweeps", [*SVAMP_E2, "--fractions", "0.25", "--methods", "dss", "--alpha", a,
                                               "--versus", "bench-svamp", "--name", f"bench-svamp-a{a}",
                                               "--tag", f"e2-alpha{a}"]) for a in ("0.3", "0.7")}}


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_script(name: str, out: Path, smoke: bool) -> dict:
    script, extra = VARIANTS.get(name, (name, []))
    cmd = [sys.executable, str(ROOT / "bench" / f"{script}.py"), "--out", str(out)] + (["--smoke"] if smoke else extra)
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    md = out / f"{name}.md" if name not in VARIANTS else None
    return {"script": f"{name}.py", "returncode": proc.returncode, "seconds": round(seconds, 1),
            "markdown": md.read_text(encoding="utf-8") if proc.returncode == 0 and md and md.is_file() else None,
            "error": proc.stderr[-2000:] if proc.returncode != 0 else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="each script in seconds (never over bench/results)")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    parser.add_argument("--out", help="results folder (default: bench/results; with --smoke a temporary folder)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = set(names) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if "gpu" in names and not args.smoke and not has_cuda():
        print("== gpu: skipped (no CUDA device; run bench/gpu.py on a GPU machine)")
        names.remove("gpu")
    out = Path(args.out or (tempfile.mkdtemp(prefix="bench-smoke-") if args.smoke else ROOT / "bench" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    results = [run_script(name, out, args.smoke) for name in names]
    summary = {"smoke": args.smoke, "scripts": [{k: v for k, v in r.items() if k != "markdown"} for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    parts = ["# Benchmarks", ""] + [
        f"| {r['script']} | {'ok' if r['returncode'] == 0 else 'FAILED'} | {r['seconds']:.0f} s |"
        for r in results]
    parts[2:2] = ["| script | status | time |", "|---|---|---|"]
    for r in results:
        if r["markdown"]:
            parts += ["", "#" + r["markdown"]]  # each report's "# title" becomes a section
    (out / "summary.md").write_text("\n".join(parts) + "\n", encoding="utf-8")
    print("\n".join(parts[:4 + len(results)]))
    print(f"results in {out}")
    return 1 if any(r["returncode"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
