"""How sure a comparison is, and what it says in plain words.

A comparison of two methods (or a student and its teacher) is made on the same test examples and, for methods,
the same seeds (each seed: both methods learn from the same rows). It reports each side's mean accuracy over seeds
with the spread, the difference of the means, and a **paired bootstrap** 95% interval of that difference:

- the unit is a test example's correctness under both methods for one seed (1 or 0 each), so the pairing removes
  what two methods share (an easy example is easy for both);
- each of 10,000 resamples draws the seeds with replacement and, independently, the test examples with
  replacement (a two-level bootstrap of the seed × example table: both training randomness and the choice of test
  examples move the interval), and takes the mean difference;
- the interval is the 2.5th and 97.5th percentiles of those means (numpy, a fixed generator seed, so a figure
  never changes between two looks).

With one seed the interval covers only the choice of test examples, not a lucky seed; the sentence says so.
The sentence is computed from the numbers, never written by hand:

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> a = (rng.random((3, 100)) < 0.8).astype(float); b = (rng.random((3, 100)) < 0.5).astype(float)
>>> compare_correct(a, b, "dss", "standard", "at 128 rows").sentence
'dss beats standard at 128 rows by 0.29 (95% CI 0.17–0.41; 3 seeds × 100 test examples)'
>>> compare_correct(a[:, :40], a[:, :40], "dss", "standard", "at 32 rows").sentence
'no difference shown at 32 rows (+0.00 to +0.00); more seeds or test examples would narrow it'
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np

from workbench.core.errors import RunError
from workbench.core.store import Store
from workbench.distill.runfolder import RunFolder

RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Verdict:
    """``a`` against ``b`` somewhere (``where``: ``at 128 rows``): means over seeds, their spread (standard
    deviation; None for one seed), the difference ``a − b`` and its interval, and the sentence."""

    a: str
    b: str
    where: str
    mean_a: float
    mean_b: float
    spread_a: float | None
    spread_b: float | None
    difference: float
    low: float
    high: float
    seeds: int
    examples: int
    sentence: str

    @property
    def shown(self) -> str:
        """``a`` (a is better), ``b``, or ``none`` (the interval holds 0)."""
        return "a" if self.low > 0 else ("b" if self.high < 0 else "none")

    def to_dict(self) -> dict:
        return {**asdict(self), "shown": self.shown}


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, *, resamples: int = RESAMPLES,
                     level: float = LEVEL, seed: int = 0) -> tuple[float, float, float]:
    """(difference of mean accuracies, low, high): a two-level paired bootstrap over a (seeds, examples) table of
    correctness for each side (see the module's docstring)."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"need two (seeds, examples) tables of one shape, not {a.shape} and {b.shape}")
    diff = a - b
    n_seeds, n_examples = diff.shape
    rng = np.random.default_rng(seed)
    means = []
    chunk = max(1, 4_000_000 // diff.size)  # resamples per block: bounded memory on any table size
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))
        examples = rng.integers(0, n_examples, size=(size, n_examples))
        per_example = diff[seeds].mean(axis=1)  # (size, examples): the drawn seeds' mean difference
        means.append(np.take_along_axis(per_example, examples, axis=1).mean(axis=1))
    means = np.concatenate(means)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


def compare_correct(correct_a, correct_b, a: str, b: str, where: str) -> Verdict:
    """The verdict on two (seeds, examples) tables of correctness (1/0), row i of both from seed i."""
    ta, tb = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    diff, low, high = paired_bootstrap(ta, tb)
    per_seed_a, per_seed_b = ta.mean(axis=1).tolist(), tb.mean(axis=1).tolist()
    n_seeds, n_examples = ta.shape
    what = f"{n_seeds} seed{'s' if n_seeds != 1 else ''} × {n_examples} test examples"
    if low > 0:
        sentence = f"{a} beats {b} {where} by {diff:.2f} (95% CI {low:.2f}–{high:.2f}; {what})"
    elif high < 0:
        sentence = f"{b} beats {a} {where} by {-diff:.2f} (95% CI {-high:.2f}–{-low:.2f}; {what})"
    else:
        sentence = f"no difference shown {where} ({low:+.2f} to {high:+.2f}); more seeds or test examples would " \
                   "narrow it"
    if n_seeds == 1 and a != "student":
        sentence += "; one seed: the interval covers the test examples, not a lucky seed"
    return Verdict(a, b, where, statistics.mean(per_seed_a), statistics.mean(per_seed_b), _spread(per_seed_a),
                   _spread(per_seed_b), diff, low, high, n_seeds, n_examples, sentence)


def _spread(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _correct_by_example(store: Store, run: str) -> dict[str, float]:
    rows = RunFolder.of(store, run).read_predictions()
    return {r["example_id"]: float(bool(r.get("correct"))) for r in rows}


def _where(student: str, rows: int | None, fraction: float | None, several_students: bool) -> str:
    size = f"{rows} rows" if rows is not None else f"{100 * fraction:g}% of the rows"
    return f"at {size}" + (f" ({student})" if several_students else "")


def _paired(store: Store, pairs: list[tuple[dict, dict]], a: str, b: str, where: str) -> Verdict | None:
    """The verdict on cells paired by seed (``a``'s cell, ``b``'s cell), on the test examples all of them were
    scored on; None when a run went away or they share no example."""
    try:
        tables = [(_correct_by_example(store, x["run"]), _correct_by_example(store, y["run"])) for x, y in pairs]
    except RunError:  # a run folder went away between the status and now
        return None
    shared = sorted(set.intersection(*(set(x) & set(y) for x, y in tables)))
    if not shared:
        return None
    return compare_correct([[x[e] for e in shared] for x, _ in tables], [[y[e] for e in shared] for _, y in tables],
                           a, b, where)


def sweep_verdicts(store: Store, status: dict, baseline: str | None = None) -> list[Verdict]:
    """Each method against the baseline (``standard`` when the sweep has it, else its first method), per student
    and training-set size, over the seeds where both cells are done, on the test examples both were scored on."""
    methods = status["config"]["methods"]
    baseline = baseline or ("standard" if "standard" in methods else methods[0])
    done = {(c["student"], c["rows"], c["fraction"], c["method"], c["seed"]): c for c in status["cells"]
            if c["status"] == "done"}
    out = []
    sizes = dict.fromkeys((c["student"], c["rows"], c["fraction"]) for c in status["cells"])
    several_students = len({s for s, _, _ in sizes}) > 1
    for student, rows, fraction in sizes:
        for method in methods:
            if method == baseline:
                continue
            pairs = [(done[(student, rows, fraction, method, seed)], done[(student, rows, fraction, baseline, seed)])
                     for seed in status["config"]["seeds"]
                     if (student, rows, fraction, method, seed) in done
                     and (student, rows, fraction, baseline, seed) in done]
            where = _where(student, rows, fraction, several_students)
            verdict = _paired(store, pairs, method, baseline, where) if pairs else None
            if verdict is not None:
                out.append(verdict)
    return out


def versus_verdicts(store: Store, status: dict, other: dict, a: str, b: str) -> list[Verdict]:
    """Each done cell of one sweep against the same cell (student, size, method, seed) of another sweep of the same
    task: a setting that is not a method (``dss``'s α, a learning rate) compared on the same rows, seeds and
    test examples. ``a`` and ``b`` name the two settings in the sentence (``α 0.3``, ``α 0.5``)."""
    def key(c: dict) -> tuple:
        return c["student"], c["rows"], c["fraction"], c["method"], c["seed"]

    theirs = {key(c): c for c in other["cells"] if c["status"] == "done"}
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for c in status["cells"]:
        if c["status"] == "done" and key(c) in theirs:
            groups.setdefault(key(c)[:4], []).append((c, theirs[key(c)]))
    several_students = len({k[0] for k in groups}) > 1
    out = []
    for (student, rows, fraction, method), pairs in groups.items():
        where = _where(student, rows, fraction, several_students)
        verdict = _paired(store, pairs, f"{method} {a}", f"{method} {b}", where)
        if verdict is not None:
            out.append(verdict)
    return out


def versus_teacher(rows: list[dict]) -> Verdict | None:
    """A trained student against its teacher on the test examples both answered (``compare``'s rows)."""
    both = [r for r in rows if r.get("teacher_correct") is not None and r.get("gold") is not None]
    if not both:
        return None
    a = [[float(bool(r["student_correct"])) for r in both]]
    b = [[float(bool(r["teacher_correct"])) for r in both]]
    return compare_correct(a, b, "student", "teacher", "on these test examples")


def one_seed_caveat(seeds: int) -> str | None:
    """What a sweep's form says about its number of seeds."""
    if seeds >= 3:
        return None
    if seeds == 1:
        return ("one seed shows whether a difference is larger than the test examples' noise, not whether it "
                "survives another seed: 3 seeds can say that")
    return "two seeds show whether a difference repeats once; 3 seeds give its spread"
