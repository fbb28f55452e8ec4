"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic
Style Transfer", 2016): keep the content photo's colours and take only the style's textures.

- luminance: transfer on luminance only. The style images' luminance is matched to the content's
  mean and spread, the optimisation runs on grey images, and the result's luminance is put back
  together with the content's chroma (YIQ), so the hues are the photo's, exactly.
- histogram: recolour each style image first so that its colour mean and covariance are the
  content's (x' = A (x - μ_s) + μ_c, A = Σ_c^½ Σ_s^-½, the symmetric "image analogies" transform),
  then transfer as usual.

All functions take and return (1, 3, H, W) RGB tensors in [0, 1].
"""
from __future__ import annotations

import torch

PRESERVE_COLOR = ("luminance", "histogram")
# NTSC YIQ; Y is the luminance of Rec. 601, as in the paper
_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """A 3x3 colour matrix applied to every pixel of (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def to_yiq(image: torch.Tensor) -> torch.Tensor:
    return _apply(_TO_YIQ, image)


def from_yiq(yiq: torch.Tensor) -> torch.Tensor:
    return _apply(torch.linalg.inv(_TO_YIQ), yiq)


def grey(image: torch.Tensor) -> torch.Tensor:
    """The luminance as a grey RGB image (what the VGG sees under luminance-only transfer)."""
    return to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def matched_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's grey image with its luminance mean and standard deviation set to the content's."""
    ys, yc = to_yiq(style)[:, :1], to_yiq(content)[:, :1]
    matched = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def with_chroma(luminance: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance of `luminance` (a grey result) with the chroma (I, Q) of `content`."""
    yiq = to_yiq(content)
    yiq = torch.cat([to_yiq(luminance)[:, :1], yiq[:, 1:]], dim=1)
    return from_yiq(yiq).clamp(0, 1)


def _sqrtm(covariance: torch.Tensor, power: float) -> torch.Tensor:
    """A symmetric positive (semi-)definite 3x3 matrix raised to `power` (±½) via its eigenvectors."""
    values, vectors = torch.linalg.eigh(covariance)
    return vectors @ torch.diag(values.clamp_min(1e-8) ** power) @ vectors.T


def matched_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style image recoloured to the content's colour mean and covariance."""
    s = style[0].reshape(3, -1).double()  # (3, N)
    c = content[0].reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    transform = _sqrtm(torch.cov(c), 0.5) @ _sqrtm(torch.cov(s), -0.5)  # (3, 3)
    out = transform @ (s - mu_s) + mu_c
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1)
