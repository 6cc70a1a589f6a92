"""Student recipes: the training defaults that suit a student, used wherever a setting is left unset.

A from-scratch preset and a pretrained checkpoint want very different settings (a learning rate of 1e-3 trains
``tiny`` and wrecks a pretrained model), so :class:`~workbench.distill.config.TrainConfig` leaves steps, batch
size, learning rate and the evaluation interval unset unless given, and the student's recipe fills them in when
the run starts; the run's ``config.json`` records the values used. The CLI, the app's form and the benchmarks
all read the same recipes.

>>> FROM_SCRATCH.learning_rate, PRETRAINED.learning_rate
(0.001, 0.0001)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

RECIPE_FIELDS = ("steps", "batch_size", "learning_rate", "eval_every")


@dataclass(frozen=True)
class Recipe:
    steps: int
    batch_size: int
    learning_rate: float
    eval_every: int

    def to_dict(self) -> dict:
        return asdict(self)


# Measured on the built-in word problems, 2 CPU cores (bench/number_slots.py, bench/first_result.py): with number
# slots the tiny preset passes the built-in teacher between steps 800 and 1,000 at batch 32; lr 3e-3 plateaued near
# 0.12 valid accuracy where 1e-3 reached 0.31 by step 200.
FROM_SCRATCH = Recipe(steps=1000, batch_size=32, learning_rate=1e-3, eval_every=200)
# T5-v1.1-base-sized, for GPUs (the paper trains T5-base with batch 64); not measured on a GPU yet.
FROM_SCRATCH_BASE = Recipe(steps=5000, batch_size=64, learning_rate=5e-4, eval_every=500)
# A pretrained checkpoint: full fine-tuning of SmolLM2-135M at lr 1e-4, batch 8, scored 1.00 on the built-in word
# problems after 60 steps on 238 rows (the pretrained-student issue's measurement, 2 CPU cores; ~4.6 s a step).
# The same for LoRA and the layer subset (bench/pretrained.py --learn measures them).
PRETRAINED = Recipe(steps=120, batch_size=8, learning_rate=1e-4, eval_every=40)
# T5-family pretrained students (flan-t5, t5-v1_1-base): the paper's settings (its run.py: AdamW lr 5e-5, batch 64,
# 10,000 steps, evaluation every 250). For GPUs; not measured here (these need the hub).
PAPER_T5 = Recipe(steps=10000, batch_size=64, learning_rate=5e-5, eval_every=250)
