"""History of generated images (Shrivastava et al. 2017) that discriminators train on."""
from __future__ import annotations

import torch


class ImagePool:
    """Holds up to `size` past fakes; `query` returns, per image, either the new fake or
    (with probability 1/2 once full) a stored one, swapping the new fake into the pool.

    Its contents and random state are part of `state_dict` so a resumed run is exact.
    """

    def __init__(self, size: int = 50, *, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"model.pool_size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []  # each (C, H, W), detached
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) detached fakes -> (B, C, H, W) images for the discriminator."""
        if self.size == 0:
            return fakes
        out = []
        draws = torch.rand(len(fakes), generator=self.generator).tolist()
        slots = torch.randint(0, self.size, (len(fakes),), generator=self.generator).tolist()
        for image, draw, slot in zip(fakes, draws, slots):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif draw > 0.5:
                out.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = [image.cpu() for image in self.images]
        return {"size": self.size, "images": images, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, *, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["rng"])
