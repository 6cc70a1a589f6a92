"""Teacher throughput: the local ``hf`` teacher batched vs one at a time, and the ``openai`` teacher against the
project's own OpenAI-compatible server with an artificial 200 ms latency per request.

    .venv/bin/python bench/teachers.py            # writes bench/results/teachers.json and teachers.md
    .venv/bin/python bench/teachers.py --smoke    # a seconds-long version (used by the test suite)

Measured:
* hf: generated tokens/s at batch 1 vs batch 32 on the same prompts, with a tiny random Llama (goal >= 8x).
* openai: a real generation job (``generate_rationales``: prompts, requests, parsing, store commits) against
  ``workbench serve-model --latency-ms 200`` in its own process: requests in flight (client and server side),
  requests/s (goal within 10% of concurrency / latency = 160/s at 32), and requests sent by a re-run (goal 0).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import write_results  # noqa: E402 - bench/ is on sys.path when a script runs

from workbench.core.store import Example, Store  # noqa: E402
from workbench.data.tasks import load_task  # noqa: E402
from workbench.models.loading import save_random_checkpoint  # noqa: E402
from workbench.rationales.generation import generate_rationales  # noqa: E402
from workbench.rationales.teachers import TeacherRequest, get_teacher  # noqa: E402
from workbench.rationales.teachers.hf import HFTeacher  # noqa: E402

PROMPT = "Q: {name} has {a} apples and gets {b} more . How many apples does {name} have now ?\nA:"
NAMES = ("Anne", "Tom", "Mia")


def bench_hf(model: str, *, prompts: int, batch: int, new_tokens: int) -> dict:
    """Tokens/s generating the same prompts one at a time and ``batch`` at a time (greedy, default stop)."""
    texts = [PROMPT.format(name=NAMES[i % 3], a=i + 2, b=2 * i + 1) for i in range(prompts)]
    out = {"prompts": prompts, "max_new_tokens": new_tokens}
    for size in (1, batch):
        teacher = HFTeacher(model, batch_size=str(size), max_new_tokens=str(new_tokens))
        teacher.complete_rendered(texts[:2])  # warm-up: load, first-call allocations
        before = dict(teacher.stats)
        started = time.perf_counter()
        teacher.complete_rendered(texts)
        seconds = time.perf_counter() - started
        tokens = teacher.stats["generated_tokens"] - before["generated_tokens"]
        out[f"batch_{size}"] = {"seconds": round(seconds, 3), "tokens": tokens,
                                "tokens_per_s": round(tokens / seconds, 1)}
        teacher.close()
    out["speedup"] = round(out[f"batch_{batch}"]["tokens_per_s"] / out["batch_1"]["tokens_per_s"], 2)
    out["batch"] = batch
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_stats(url: str) -> dict:
    import httpx

    return httpx.get(url.removesuffix("/v1") + "/_workbench/stats", timeout=10).json()


def start_server(model: str, latency_ms: float, workspace: Path, threads: int) -> tuple[subprocess.Popen, str]:
    """``workbench serve-model`` in its own process (as a user would run it); waits until it answers."""
    import httpx

    port = _free_port()
    log = open(workspace / "server.log", "wb")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve-model", model, "--port", str(port),
                             "--latency-ms", str(latency_ms), "--threads", str(threads),
                             "--max-input-tokens", "32"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve-model exited: {(workspace / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("serve-model did not start within 120 s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_endpoint(model: str, workspace: Path, *, rows: int, concurrency: int, latency_ms: float,
                   threads: int) -> dict:
    """A generation job against the server: throughput, requests in flight, and what a re-run sends."""
    store = Store.open(workspace / "ws")
    task = load_task("quantnli", store, n_train=rows, n_valid=2, n_test=2)
    proc, url = start_server(model, latency_ms, workspace, threads)
    try:
        spec = f"openai:tiny@{url}?mode=completions&concurrency={concurrency}&max_tokens=4&timeout=30"
        warm = get_teacher(spec, store=store)  # a fresh server's first batches are slow (lazy init): not measured
        warm.answer([TeacherRequest(Example(f"w{i}", "warm", "", None), f"warm-up {i}") for i in range(2 * concurrency)])
        warm.close()
        before = _server_stats(url)["requests"]
        teacher = get_teacher(spec, store=store)
        server_cpu, client_cpu = _cpu_seconds(proc.pid), time.process_time()
        started = time.perf_counter()
        summary = generate_rationales(store, task, teacher)
        seconds = time.perf_counter() - started
        client_cpu, server_cpu = time.process_time() - client_cpu, _cpu_seconds(proc.pid) - server_cpu
        server = _server_stats(url)
        rerun = generate_rationales(store, task, get_teacher(spec, store=store))
        after = _server_stats(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ideal = concurrency / (latency_ms / 1000.0)
    rps = summary["generated"] / seconds
    return {"rows": rows, "concurrency": concurrency, "latency_ms": latency_ms, "seconds": round(seconds, 3),
            "requests_per_s": round(rps, 1), "ideal_requests_per_s": round(ideal, 1),
            "fraction_of_ideal": round(rps / ideal, 3), "client_max_in_flight": teacher.stats["max_in_flight"],
            "server_max_in_flight": server["max_in_flight"], "requests_sent": teacher.stats["requests"],
            "retries": teacher.stats["retries"], "failed_rows": teacher.stats["failed_rows"],
            "parse_errors": summary["parse_errors"], "rerun_generated": rerun["generated"],
            "server_requests": server["requests"] - before,
            "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, summary["generated"]), 2),
            "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, summary["generated"]), 2), "server_seconds_median": server["seconds_median"],
            "rerun_requests": after["requests"] - server["requests"],
            "duplicate_prompts_server_side": after["duplicate_prompts"]}


def render_md(result: dict) -> str:
    hf, ep = result["hf"], result["endpoint"]
    b = hf["batch"]
    return "\n".join([
        f"# Teacher benchmark ({result['machine']})", "",
        "| measure | value | goal |", "|---|---|---|",
        f"| hf tokens/s, batch 1 | {hf['batch_1']['tokens_per_s']} | |",
        f"| hf tokens/s, batch {b} | {hf[f'batch_{b}']['tokens_per_s']} | |",
        f"| hf speed-up batch {b} vs 1 | {hf['speedup']}x | >= 8x |",
        f"| endpoint requests in flight (client / server) | {ep['client_max_in_flight']} / "
        f"{ep['server_max_in_flight']} | >= 32 |",
        f"| endpoint requests/s ({ep['latency_ms']:.0f} ms latency, concurrency {ep['concurrency']}) | "
        f"{ep['requests_per_s']} ({ep['fraction_of_ideal']:.0%} of {ep['ideal_requests_per_s']}) | >= 90% |",
        f"| requests sent by a re-run | {ep['rerun_requests']} | 0 |",
        f"| CPU per request, client / server (why requests/s falls short on a busy CPU) | "
        f"{ep['client_cpu_ms_per_request']} / {ep['server_cpu_ms_per_request']} ms | |", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run (small sizes)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for teachers.json/.md")
    parser.add_argument("--concurrency", type=int, default=32, help="endpoint requests in flight at most")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads, here and in the server (1: tiny models gain nothing from more, and "
                             "lose much when other processes share the cores)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sizes = ({"prompts": 8, "batch": 8, "new_tokens": 8, "rows": 64} if args.smoke else
             {"prompts": 32, "batch": 32, "new_tokens": 32, "rows": 640})
    with tempfile.TemporaryDirectory(prefix="bench-teachers-") as tmp:
        work = Path(tmp)
        model = save_random_checkpoint(work / "tiny-llama", "causal", hidden=64, layers=2)
        hf = bench_hf(model, prompts=sizes["prompts"], batch=sizes["batch"], new_tokens=sizes["new_tokens"])
        # The endpoint part measures the client's concurrency, not the model: the smallest model keeps the
        # server's own work well under the 200 ms it stands in for.
        small = save_random_checkpoint(work / "tiny-llama-16", "causal", hidden=16, layers=1)
        endpoint = bench_endpoint(small, work, rows=sizes["rows"], concurrency=args.concurrency, latency_ms=200,
                                  threads=args.threads)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"machine": f"{os.cpu_count()} CPU cores (load average {load}), torch {torch.__version__}, "
                         f"{torch.get_num_threads()} thread(s)" + (", CUDA" if torch.cuda.is_available() else ""),
              "smoke": args.smoke, "hf": hf, "endpoint": endpoint}
    write_results(args.out, "teachers", result, render_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
