"""The matting Laplacian of a photo (Levin, Lischinski & Weiss, "A Closed-Form Solution to Natural
Image Matting", 2008) as the photorealism regulariser of Luan et al. ("Deep Photo Style Transfer",
2017): Σ_c V_cᵀ L V_c is near zero for any output whose colours are, in every 3×3 window, an affine
function of the photo's, so it penalises painterly distortions but not colour changes.

    L = matting_laplacian(photo)       # photo: (H, W, 3) floats in [0, 1]; scipy CSR (HW, HW)
    term = MattingTerm(L)              # torch sparse copy
    energy = term(image)               # image: (1, 3, H, W) -> Σ_c V_cᵀ L V_c · 512²/(H·W), gradient ∝ 2·L·V

L is built once per photo without a loop over pixels: each of the 81 pixel pairs of a 3×3 window
adds its value for all windows at once into one of the 25 diagonals (offsets in a 5×5 neighbourhood)
that L has, which then become a CSR matrix (25·H·W entries at most; 1024×1024 px in about 4 s and 1.7 GB).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse
import torch

EPS = 1e-7  # Luan et al.'s regularisation of the window covariances
# Luan et al. sum the energy over the pixels while the Gatys losses are means, so their lambda's
# strength grows with the image. Scaled to this many pixels, lambda means at every size (and every
# coarse-to-fine pass) what it means to them at 512 x 512.
REFERENCE_PIXELS = 512 * 512
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # pixels of a 3x3 window around its centre


def matting_laplacian(image: np.ndarray, eps: float = EPS) -> scipy.sparse.csr_matrix:
    """(H, W, 3) float RGB in [0, 1] -> the (H·W, H·W) symmetric positive semi-definite matting
    Laplacian over all 3×3 windows inside the image (pixels in row-major order; rows sum to 0)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 3:
        raise ValueError(f"the matting Laplacian needs an (H, W, 3) image of at least 3x3 pixels, got {image.shape}")
    h, w = image.shape[:2]
    # colours of the 9 pixels of every window, windows centred on the interior pixels
    centred = np.stack([image[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy, dx in _OFFSETS], axis=2)  # (h-2, w-2, 9, 3)
    centred -= centred.mean(axis=2, keepdims=True)  # minus the window means μ
    covariance = np.einsum("...ki,...kj->...ij", centred, centred) / 9  # (h-2, w-2, 3, 3)
    inverse = np.linalg.inv(covariance + (eps / 9) * np.eye(3))  # (h-2, w-2, 3, 3)
    projected = np.einsum("...ij,...kj->...ki", inverse, centred)  # (Σ + ε/9)⁻¹ (I_k - μ): (h-2, w-2, 9, 3)
    diagonals = np.zeros((5, 5, h, w))  # [dy + 2, dx + 2, y, x] = L[(y, x), (y + dy, x + dx)]
    for a, (ay, ax) in enumerate(_OFFSETS):
        for b, (by, bx) in enumerate(_OFFSETS):
            # δ_ab - (1 + (I_a - μ)ᵀ (Σ + ε/9)⁻¹ (I_b - μ)) / 9 for every window at once
            value = (a == b) - (1 + np.einsum("...i,...i->...", centred[..., a, :], projected[..., b, :])) / 9
            diagonals[by - ay + 2, bx - ax + 2, 1 + ay:h - 1 + ay, 1 + ax:w - 1 + ax] += value
    del centred, projected, inverse
    # CSR straight from the diagonals: row (y, x) holds columns (y + dy, x + dx) in (dy, dx) order,
    # which is ascending, for the offsets that stay inside the image.
    ys, xs = np.mgrid[0:h, 0:w]
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    inside = np.stack([(ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w) for dy, dx in offsets],
                      axis=-1).reshape(h * w, 25)  # (HW, 25)
    columns = (np.arange(h * w, dtype=np.int64)[:, None] + [dy * w + dx for dy, dx in offsets])[inside]
    data = diagonals.reshape(25, h * w).T[inside]  # (nnz,), row by row
    indptr = np.concatenate([[0], np.cumsum(inside.sum(axis=1))])
    index_type = np.int32 if h * w * 25 < 2**31 else np.int64
    return scipy.sparse.csr_matrix((data, columns.astype(index_type), indptr.astype(index_type)), shape=(h * w, h * w))


def matting_energy(laplacian: scipy.sparse.spmatrix, image: np.ndarray) -> float:
    """Σ_c V_cᵀ L V_c of an (H, W, 3) float image in [0, 1] (what `MattingTerm` computes, in NumPy)."""
    v = np.asarray(image, dtype=np.float64).reshape(-1, 3)  # (HW, 3)
    return float((v * (laplacian @ v)).sum())


class _Quadratic(torch.autograd.Function):
    """Σ V ∘ (L V) with the gradient 2·L·V, reusing the forward's L·V (L is symmetric)."""

    @staticmethod
    def forward(ctx, laplacian: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        lv = laplacian @ v  # (HW, 3)
        ctx.save_for_backward(lv)
        return (v * lv).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (lv,) = ctx.saved_tensors
        return None, 2 * grad * lv


class MattingTerm:
    """The photorealism energy of (1, 3, H, W) images in [0, 1] against one photo's Laplacian,
    Σ_c V_cᵀ L V_c scaled to REFERENCE_PIXELS."""

    def __init__(self, laplacian: scipy.sparse.spmatrix, device: torch.device | str = "cpu") -> None:
        csr = scipy.sparse.csr_matrix(laplacian)
        self.size = csr.shape[0]
        with warnings.catch_warnings():  # "CSR support is in beta": its matrix product is 7x faster than COO's here
            warnings.simplefilter("ignore", UserWarning)
            self.matrix = torch.sparse_csr_tensor(torch.from_numpy(csr.indptr.astype(np.int64)),
                                                  torch.from_numpy(csr.indices.astype(np.int64)),
                                                  torch.from_numpy(csr.data.astype(np.float32)), size=csr.shape,
                                                  check_invariants=False).to(device)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        if b != 1 or c != 3 or h * w != self.size:
            raise ValueError(f"the matting Laplacian is for {self.size} pixels, got an image of shape {tuple(image.shape)}")
        v = image.float()[0].reshape(3, h * w).t()  # (HW, 3)
        return _Quadratic.apply(self.matrix, v) * (REFERENCE_PIXELS / (h * w))
