"""What a run writes about itself before it trains: the description in ``config.json`` (config, data
fingerprint, teacher and templates, student, generation lengths, versions) and the texts a preset's tokenizer is
trained on."""

from __future__ import annotations

import json
import time

from workbench.core.store import Store
from workbench.distill.encoding import encoder_for
from workbench.distill.methods import class_path, method_for_config
from workbench.distill.number_slots import slots_for
from workbench.models.loading import count_parameters
from workbench.rationales.trainingset import fingerprint


def vocab_texts(store: Store, task, rows: list[dict], numbers: str) -> list[str]:
    """Inputs of every split (no gold labels) so new inputs are not unknown words; targets from the training rows
    only; all as the student will see them (number slots included)."""
    texts = [slots_for(numbers, e.input).encode(e.input) for e in store.examples(task.name)]
    for r in rows:
        slots = slots_for(numbers, r["input"])
        texts += [slots.encode(r["label"]) or "", slots.encode(r.get("rationale")) or ""]
    return texts + list(task.labels or ())


def describe_run(store: Store, cfg, name: str, task, ts, rows: list[dict], student) -> dict:
    """Everything needed to re-run: config, data fingerprint, teacher and templates, student, versions."""
    import tokenizers
    import torch
    import transformers

    from workbench.distill.students import device_info

    gen_ids = [r["generation_id"] for r in rows if r.get("generation_id") is not None]
    # json_each: one bound parameter however many rows (SQLite caps the number of '?' placeholders).
    hashes = sorted({r[0] for r in store.conn.execute(
        "SELECT DISTINCT template_hash FROM generations WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(gen_ids),))})
    method = method_for_config(cfg)
    enc = encoder_for(student, cfg)
    slotted = [(enc.slots(r["input"]), r) for r in rows]
    label_tokens = max(len(enc.target_ids(s.encode(r["label"]))) for s, r in slotted) + 2
    rationale_tokens = cfg.max_target_len
    if method.needs_rationale:
        rationale_tokens = min(cfg.max_target_len,
                               max(len(enc.target_ids(s.encode(r["rationale"]))) for s, r in slotted) + 8)
    return {
        "name": name, "created": time.time(), "config": cfg.to_dict(),
        "task": {"name": task.name, "answer_kind": task.answer_kind, "metric": task.metric_name,
                 "labels": list(task.labels) if task.labels else None},
        "trainingset": {**ts.summary(), "rows_used": len(rows), "fraction": cfg.fraction,
                        "fingerprint_used": fingerprint(rows)},
        "teacher": cfg.teacher, "template_hashes": hashes,
        "student": {"spec": cfg.student, "family": student.family, "parameters": count_parameters(student.model),
                    "model_type": student.model.config.model_type, "vocab_size": len(student.tokenizer)},
        "method": cfg.method, "method_class": class_path(type(method)), "seed": cfg.seed,
        "device": device_info(cfg.bf16, cfg.student),
        "generation": {"label_tokens": label_tokens, "rationale_tokens": rationale_tokens, "layout": enc.layout},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
    }
