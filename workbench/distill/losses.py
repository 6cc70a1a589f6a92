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


def target_positions(labels: torch.Tensor, causal: bool, token_tasks: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Where the output layer must run: a (N, T) mask of the positions whose output predicts a target token, the
    targets they predict, and each one's task (when ``token_tasks`` is given). Causal logits at t predict the token
    at t+1, so labels (and their tasks) move one step left.

    >>> mask, targets, _ = target_positions(torch.tensor([[-100, -100, 7, 8]]), causal=True)
    >>> mask.tolist(), targets[mask].tolist()
    ([[False, True, True, False]], [7, 8])
    """
    if causal:
        labels = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
        if token_tasks is not None:
            token_tasks = F.pad(token_tasks[:, 1:], (0, 1), value=-1)
    return labels != IGNORE, labels, token_tasks


def token_tasks_of(batch: dict) -> torch.Tensor:
    """Each label token's task, (N, T): the collator's ``token_tasks`` (a packed row holds several tasks), or its
    row's task."""
    if "token_tasks" in batch:
        return batch["token_tasks"]
    labels = batch["labels"]
    rows = batch.get("task_ids", torch.zeros(labels.shape[0], dtype=torch.long, device=labels.device))
    return torch.where(labels != IGNORE, rows.to(labels.device).unsqueeze(1), -1)


def target_logits_of(logits: torch.Tensor, batch: dict, causal: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Whole logits (N, T, V) → the logits at target positions (K, V), their targets (K,) and tasks (K,)."""
    mask, targets, tasks = target_positions(batch["labels"], causal, token_tasks_of(batch))
    return logits[mask], targets[mask], tasks[mask]


def weighted_target_loss(logits: torch.Tensor, targets: torch.Tensor, tasks: torch.Tensor, weights: list[float]
                         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Σ_t w_t · mean CE over task t's target tokens, from the logits at target tokens only (K, V): for dss,
    α·L_label + (1−α)·L_rationale. A task with no tokens in the batch counts 0.

    >>> loss, means = weighted_target_loss(torch.zeros(3, 4), torch.tensor([1, 2, 3]), torch.tensor([0, 1, 1]), [0.5, 0.5])
    >>> round(float(loss), 4), [round(float(m), 4) for m in means]   # uniform over 4: ln 4 for every token
    (1.3863, [1.3863, 1.3863])
    """
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    means = []
    for t in range(len(weights)):
        m = tasks == t
        means.append(ce[m].sum() / m.sum().clamp(min=1))
    return sum(w * m for w, m in zip(weights, means)), means


def kd_loss(class_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher_T ‖ student_T)·T² over the label space (Hinton et al.); teacher probs are softened by T too."""
    t_log = torch.log(teacher_probs.clamp(min=1e-8)) / temperature
    t_soft = F.softmax(t_log, dim=-1)
    s_log = F.log_softmax(class_logits.float() / temperature, dim=-1)
    return F.kl_div(s_log, t_soft, reduction="batchmean") * temperature**2


