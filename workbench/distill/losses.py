"""Pure loss functions over logits: per-token cross-entropy, per-task means and their weighted sum, and the KD term.

Each is a plain function of tensors, tested against a hand computation; the methods (:mod:`.methods`) combine them.

>>> import torch
>>> logits, labels = torch.zeros(1, 2, 4), torch.tensor([[1, -100]])
>>> round(float(token_cross_entropy(logits, labels, causal=False)[0][0, 0]), 4)  # uniform over 4: ln 4
1.3863
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100


@dataclass
class LossOutput:
    loss: torch.Tensor
    parts: dict[str, torch.Tensor]  # detached, per task, for logging (label_loss, rationale_loss, kl…)


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE (N, T) and the mask of target tokens. Causal logits at t predict the token at t+1."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                         reduction="none").view(labels.shape)
    return ce, labels != IGNORE


def task_mean_losses(ce: torch.Tensor, mask: torch.Tensor, task_ids: torch.Tensor, n_tasks: int) -> list[torch.Tensor]:
    """Mean target-token CE of each task's rows (0 for a task with no rows in this batch)."""
    out = []
    for t in range(n_tasks):
        m = mask & (task_ids == t).unsqueeze(1)
        out.append(ce[m].sum() / m.sum().clamp(min=1))
    return out


def weighted_task_loss(logits, labels, task_ids, weights: list[float], causal: bool) -> tuple[torch.Tensor, list]:
    """Σ_t w_t · mean_token_CE(task t): for dss, α·L_label + (1−α)·L_rationale."""
    ce, mask = token_cross_entropy(logits, labels, causal)
    means = task_mean_losses(ce, mask, task_ids, len(weights))
    return sum(w * m for w, m in zip(weights, means)), means


def kd_loss(class_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T ‖ student_T)·T² over the label space (Hinton et al.); teacher probs are softened by T too."""
    t_log = torch.log(teacher_probs.clamp(min=1e-8)) / temperature
    t_soft = F.softmax(t_log, dim=-1)
    s_log = F.log_softmax(class_logits.float() / temperature, dim=-1)
    return F.kl_div(s_log, t_soft, reduction="batchmean") * temperature**2


