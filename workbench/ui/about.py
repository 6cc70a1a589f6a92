"""The About tab: distilling step by step in plain words, for teaching. Static text only."""

from __future__ import annotations

import gradio as gr

ABOUT = """
## Distilling step by step, in plain words

A big language model (the **teacher**) can solve a problem *and say why*. A small model (the **student**) is
cheap to run but needs many labelled examples to learn. *Distilling step by step* (Hsieh et al., 2023) lets the
student learn from the teacher's **reasons** as well as its answers, so it learns more from fewer examples.

**An example.** *Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?*

| | |
|---|---|
| teacher's answer (the **label**) | `1` |
| teacher's reason (the **rationale**) | `4 − 2 − 1 = 1` |

The student is trained on two small tasks for every example, told apart by a prefix:

* `[label] Anne has 4 apples …` → `1`
* `[rationale] Anne has 4 apples …` → `4 − 2 − 1 = 1`

The two losses are mixed: *loss = α · label loss + (1 − α) · rationale loss*. Learning to explain forces the
student to pick up the steps that lead to the answer, not only the answer. At test time it only runs the
`[label]` task, so it is as fast as a model trained on labels alone and needs no teacher.

### How to use this workbench
1. **Task & teacher** — pick a task (the built-in word problems are ready) and a teacher (the built-in one works
   offline); look at the few-shot prompt the teacher gets, and edit it if you like.
2. **Rationales** — let the teacher answer some examples; read its rationales, fix or reject the bad ones.
   Your edits are saved as you make them.
3. **Train** — train a small student: `standard` (labels only), `dss` (labels + rationales, as above),
   `cot` (rationale then label in one answer) or `kd` (the teacher's soft class scores).
4. **Compare** — see where the student agrees with the teacher, where it beats it, and where it does not.

Everything lives in one workspace folder, so you can close the browser and come back: running jobs keep going.
The same steps are available from the `workbench` command line and from Python notebooks.
"""


def render() -> None:
    """Lay out the About tab (inside a ``gr.Tab``)."""
    gr.Markdown(ABOUT)
