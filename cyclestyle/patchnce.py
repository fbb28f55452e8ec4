"""PatchNCE (Park et al., ECCV 2020, eq. 2-3): a patch of the output should match the input patch at
the same location (the positive) rather than the input's other patches (the negatives).

    q = heads(output features at sampled locations)    # (B * P, D), unit length, P patches per image
    k = heads(input features at the same locations)    # (B * P, D), unit length; no gradient
    loss = patch_nce(q, k, images=B, temperature=0.07)

For query i, the logits are (q_i . k_i, q_i . k_j for the other patches j of the same image) / T,
and the loss is the cross-entropy of picking the positive, averaged over all B * P queries. The
official code (`models/patchnce.py`) sets the self-similarity entry to -10 instead of dropping it,
so each row keeps P + 1 logits; this does the same (exp(-10 / T) is ~0). With
`negatives_from_batch`, the patches of every image of the batch are negatives (single-image
translation in the official code); by default only the image's own patches are.

No parameters: the projection heads are `networks.cut.PatchHeads`, trained with the generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MASKED_LOGIT = -10.0  # the official value for the (meaningless) similarity of a patch to itself


def patch_nce(q: torch.Tensor, k: torch.Tensor, *, images: int, temperature: float = 0.07,
              negatives_from_batch: bool = False) -> torch.Tensor:
    """Mean PatchNCE loss of queries `q` against keys `k`, both (images * P, D), image-major."""
    if q.shape != k.shape or q.ndim != 2 or len(q) % images:
        raise ValueError(f"PatchNCE needs q and k of equal shape (images * patches, dim); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)} for {images} images")
    q, k = q.float(), k.detach().float()
    dim = q.shape[1]
    positive = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    groups = 1 if negatives_from_batch else images
    q_groups, k_groups = q.view(groups, -1, dim), k.view(groups, -1, dim)  # (G, M, D)
    negative = torch.bmm(q_groups, k_groups.transpose(1, 2))  # (G, M, M): every query against every key
    size = negative.shape[1]
    self_pairs = torch.eye(size, dtype=torch.bool, device=q.device)[None]
    negative = negative.masked_fill(self_pairs, MASKED_LOGIT).view(-1, size)  # (N, M)
    logits = torch.cat([positive, negative], dim=1) / temperature  # (N, 1 + M); the positive is class 0
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=q.device))
