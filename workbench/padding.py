"""Padding token lists into tensors, shared by student generation and the transformers teacher."""

from __future__ import annotations


def pad_batch(seqs: list[list[int]], pad_id: int, *, left: bool):
    """Stack token lists into ids and attention mask tensors, padded on the left (causal generation) or right."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        ids[row, cols] = torch.tensor(s, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask
