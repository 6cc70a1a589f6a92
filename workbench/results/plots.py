"""Plotly figure builders shared by the UI and the notebooks.

Each builder takes plain Python data (lists of dicts, as read from a run's ``metrics.jsonl`` or returned by
:func:`workbench.results.compare.compare`) and returns a ``plotly.graph_objects.Figure``; none of them reads files.

>>> fig = loss_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
>>> [t.name for t in fig.data]
['train loss']
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Which metric keys are training losses and which are accuracies; the first present name of each group wins
# (runs from different trainer versions spell them differently).
LOSS_KEYS = (("loss", "train loss"), ("label_loss", "label loss"), ("rationale_loss", "rationale loss"))
ACC_KEYS = ("accuracy", "eval_accuracy")
TEACHER_COLOR = "#d62728"
METHOD_COLORS = {"standard": "#4c6ef5", "dss": "#2f9e44", "cot": "#f08c00", "kd": "#ae3ec9"}
_PALETTE = ("#1098ad", "#e8590c", "#5c940d", "#862e9c", "#495057")
_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=45), height=340,
               legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))


def _series(records: Iterable[dict], key: str, event: str | None = None) -> tuple[list, list]:
    """(steps, values) of one metric; ``event`` keeps only records of that kind (records without one pass)."""
    xs, ys = [], []
    for r in records:
        r = r.to_dict() if hasattr(r, "to_dict") else r  # typed events (workbench.core.events) or their dicts
        if event is not None and r.get("event", event) != event:
            continue
        value = r.get(key)
        if isinstance(value, (int, float)) and r.get("step") is not None:
            xs.append(r["step"])
            ys.append(value)
    return xs, ys


def loss_curves(records: Sequence[dict], title: str = "Training") -> go.Figure:
    """Loss per step (label and rationale parts separately when the run logged them) and eval accuracy.

    Losses are on the left axis, accuracy on the right one, so both fit one small chart.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name in LOSS_KEYS:
        xs, ys = _series(records, key, "train")
        if xs:
            # One point is no line: draw it as a marker (a lone point drawn as a line is an empty chart).
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines" if len(xs) > 1 else "markers", name=name),
                          secondary_y=False)
    for key in ACC_KEYS:
        xs, ys = _series(records, key, "eval")
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name="eval accuracy",
                                     line=dict(dash="dot")), secondary_y=True)
            break
    fig.update_layout(title=title, **_LAYOUT)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], secondary_y=True)
    return fig


def method_color(method: str) -> str:
    return METHOD_COLORS.get(method, _PALETTE[sum(map(ord, method)) % len(_PALETTE)])


def accuracy_bars(accuracies: dict[str, float | None], teacher: float | None = None,
                  title: str = "Accuracy on the same test examples", methods: dict[str, str] | None = None
                  ) -> go.Figure:
    """One bar per model, coloured by method (``methods``: name → method; a legend entry per method), plus the
    teacher's bar in its own colour. Labels sit above the bars, never clipped."""
    methods = methods or {}
    fig = go.Figure()
    if teacher is not None:
        fig.add_trace(go.Bar(x=["teacher"], y=[teacher], marker_color=TEACHER_COLOR, name="teacher",
                             text=[f"{100 * teacher:.1f}%"], textposition="outside", cliponaxis=False))
    for method in dict.fromkeys(methods.get(n, "student") for n in accuracies):
        names = [n for n in accuracies if methods.get(n, "student") == method]
        values = [accuracies[n] for n in names]
        fig.add_trace(go.Bar(x=names, y=[v if v is not None else 0 for v in values], name=method,
                             marker_color=method_color(method), textposition="outside", cliponaxis=False,
                             text=[("–" if v is None else f"{100 * v:.1f}%") for v in values]))
    fig.update_layout(title=title, yaxis=dict(title="accuracy", range=[0, 1.15], tickvals=[0, .2, .4, .6, .8, 1]),
                      barmode="group", **_LAYOUT)
    return fig


def size_vs_accuracy(points: Sequence[dict], teacher: float | None = None,
                     title: str = "Model size vs accuracy", teacher_label: str = "teacher") -> go.Figure:
    """The paper's size figure. ``points``: dicts with ``method``, ``params``, ``accuracy`` (and ``run``)."""
    return method_lines(points, "params", teacher, title, dict(title="student parameters", type="log"),
                        teacher_label)


def fraction_vs_accuracy(points: Sequence[dict], teacher: float | None = None,
                         title: str = "Training data vs accuracy") -> go.Figure:
    """The paper's data-efficiency figure by share of the training set. ``points``: ``method``, ``fraction``,
    ``accuracy``."""
    pts = [{**p, "percent": 100 * p["fraction"]} for p in points]
    return method_lines(pts, "percent", teacher, title, dict(title="% of the training set"))


def rows_vs_accuracy(points: Sequence[dict], teacher: float | None = None,
                     title: str = "Training rows vs accuracy", teacher_label: str = "teacher") -> go.Figure:
    """The paper's data-efficiency figure by number of training rows (log axis). ``points``: ``method``, ``rows``,
    ``accuracy``; several seeds at one point are drawn as their mean with the spread as an error bar."""
    return method_lines(points, "rows", teacher, title, dict(title="training rows", type="log"), teacher_label)


def seconds_vs_accuracy(points: Sequence[dict], teacher: float | None = None, title: str = "Training time vs "
                        "accuracy", teacher_label: str = "teacher") -> go.Figure:
    """What a method costs for what it gives: one line per method through its sizes, each point at the mean
    training seconds and mean accuracy of that size's runs (``points``: ``method``, ``rows``, ``seconds``,
    ``accuracy``), the spread over seeds as error bars both ways."""
    fig = go.Figure()
    for method in dict.fromkeys(p["method"] for p in points):
        by_size: dict = {}
        for p in points:
            if p["method"] == method and p.get("accuracy") is not None and p.get("seconds") is not None:
                by_size.setdefault(p["rows"], []).append(p)
        sizes = sorted(by_size)
        xs = [sum(q["seconds"] for q in by_size[r]) / len(by_size[r]) for r in sizes]
        ys = [sum(q["accuracy"] for q in by_size[r]) / len(by_size[r]) for r in sizes]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=method, line=dict(color=method_color(method)),
            error_y=dict(type="data", symmetric=False, visible=True,
                         array=[max(q["accuracy"] for q in by_size[r]) - y for r, y in zip(sizes, ys)],
                         arrayminus=[y - min(q["accuracy"] for q in by_size[r]) for r, y in zip(sizes, ys)]),
            error_x=dict(type="data", symmetric=False, visible=True,
                         array=[max(q["seconds"] for q in by_size[r]) - x for r, x in zip(sizes, xs)],
                         arrayminus=[x - min(q["seconds"] for q in by_size[r]) for r, x in zip(sizes, xs)]),
            text=[f"{r:,} rows, {len(by_size[r])} run(s)" for r in sizes]))
    if teacher is not None:
        fig.add_hline(y=teacher, line_dash="dash", line_color=TEACHER_COLOR, annotation_text=teacher_label)
    fig.update_layout(title=title, xaxis=dict(title="training seconds per run (log)", type="log"),
                      yaxis=dict(title="accuracy", range=[0, 1.05]), **_LAYOUT)
    return fig


def method_lines(points: Sequence[dict], x: str, teacher: float | None, title: str, xaxis: dict,
                 teacher_label: str = "teacher") -> go.Figure:
    """One line per method over ``x``: the mean accuracy of the points at each x, with the spread (min to max) as
    an error bar when there are several (seeds); the teacher as a dashed reference line (``teacher_label`` says
    which answers its figure uses)."""
    fig = go.Figure()
    for method in dict.fromkeys(p["method"] for p in points):
        by_x: dict = {}
        for p in points:
            if p["method"] == method and p.get("accuracy") is not None:
                by_x.setdefault(p[x], []).append(p["accuracy"])
        xs = sorted(by_x)
        means = [sum(by_x[v]) / len(by_x[v]) for v in xs]
        fig.add_trace(go.Scatter(
            x=xs, y=means, mode="lines+markers", name=method, line=dict(color=method_color(method)),
            error_y=dict(type="data", symmetric=False, array=[max(by_x[v]) - m for v, m in zip(xs, means)],
                         arrayminus=[m - min(by_x[v]) for v, m in zip(xs, means)], visible=True),
            text=[f"{len(by_x[v])} run(s)" for v in xs]))
    if teacher is not None:
        fig.add_hline(y=teacher, line_dash="dash", line_color=TEACHER_COLOR, annotation_text=teacher_label)
    fig.update_layout(title=title, xaxis=xaxis, yaxis=dict(title="accuracy", range=[0, 1.05]), **_LAYOUT)
    return fig


def curve_gap(points: Sequence[dict], x: str, what: str) -> str | None:
    """Why ``points`` cannot draw a curve over ``x`` (None: they can): a line needs two values of ``x`` for one
    method. Say so instead of drawing a lone point.

    >>> curve_gap([{"method": "dss", "fraction": 1.0}], "fraction", "training-set fractions")
    'a curve needs runs of one method at two or more training-set fractions; these runs have 1\xa0(1)'
    """
    per_method = {}
    for p in points:
        per_method.setdefault(p["method"], set()).add(p[x])
    if any(len(v) >= 2 for v in per_method.values()):
        return None
    values = sorted({p[x] for p in points})
    shown = ", ".join(f"{v:,}" if isinstance(v, int) else f"{v:g}" for v in values) or "none"
    # A no-break space: a wrapped chart message never splits "1 (134,515,008)" into "1" and "(134,515,008)".
    return f"a curve needs runs of one method at two or more {what}; these runs have {len(values)}\u00a0({shown})"


def confusion_matrix(labels: Sequence[str], golds: Sequence[str | None], preds: Sequence[str | None],
                     title: str = "Confusion matrix") -> go.Figure:
    """Counts of (gold, predicted) over the label space; predictions outside it go to an ``other`` column."""
    labels = list(labels)
    cols = labels + ["other"]
    index = {lab: i for i, lab in enumerate(labels)}
    z = [[0] * len(cols) for _ in labels]
    for gold, pred in zip(golds, preds):
        if gold in index:
            z[index[gold]][index.get(pred, len(labels))] += 1
    if not any(row[-1] for row in z):  # hide the empty "other" column
        cols, z = labels, [row[:-1] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=labels, colorscale="Blues", text=z, texttemplate="%{text}",
                               hovertemplate="gold %{y}<br>predicted %{x}<br>%{z}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(title="predicted"), yaxis=dict(title="gold", autorange="reversed"),
                      **_LAYOUT)
    return fig


def empty(message: str) -> go.Figure:
    """A blank chart that says why it is blank (instead of an empty box)."""
    fig = go.Figure()
    # plotly does not wrap annotations; the space keeps the words apart in the page text (tspans join without one)
    message = " <br>".join(textwrap.wrap(message, 60))
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#888"))
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), **_LAYOUT)
    return fig
