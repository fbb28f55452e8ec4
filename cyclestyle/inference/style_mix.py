"""The style options of multi_style models (`--style-index K`, `--style-mix W0,W1,...`) for `translate`
and `export`: `style_mix_binding` gives the `bind` that `load_generator` applies to a checkpoint's
network, turning net(x, mix) into an image -> image `StyleMixed` with the weights in a buffer.

Weights: one per style of the model, non-negative, not all zero; they are normalised to sum 1, so
`0.7,0.3` and `7,3` are the same blend. `--style-index K` is the one-hot mix of style K (from 0).
A style option on a model that takes no style mix (any other family) is an error, never ignored.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch.nn as nn

CONDITION = "style_mix"  # TranslatorSpec.condition of the networks these options bind
OPTIONS = "--style-index/--style-mix"


def style_mix_binding(*, index: int | None = None, mix: Sequence[float] | None = None, unbound_ok: bool = False,
                      otherwise: Callable[[nn.Module, str | None], nn.Module] | None = None
                      ) -> Callable[[nn.Module, str | None], nn.Module]:
    """`bind(net, condition)` for `load_generator`. A style-mix network gets style `index` or blend `mix`
    bound (without either and with `unbound_ok` it is returned as it is, its mix a second input: for
    `export`); any other
    network goes to `otherwise` (another family's style options), else is returned as it is (None
    condition) or refused. ValueError for both options at once, an index or a mix that does not fit
    the model's styles, a style-mix network without either, or these options on any other network."""
    from ..networks.transformer import StyleMixed, normalise_mix

    given = index is not None or mix is not None
    if index is not None and mix is not None:
        raise ValueError("give --style-index or --style-mix, not both")

    def bind(net: nn.Module, condition: str | None) -> nn.Module:
        if condition != CONDITION:
            if given:
                kind = "takes no style" if condition is None else f"is conditioned on {condition}, not on a style mix"
                raise ValueError(f"{OPTIONS} apply to multi_style models only; this model {kind}")
            if otherwise is not None:
                return otherwise(net, condition)
            if condition is not None:
                raise ValueError(f"a style-conditioned model ({condition}): give its style options")
            return net
        n_styles = int(net.n_styles)
        if not given and unbound_ok:
            return net
        if not given:
            raise ValueError(f"this multi_style model holds {n_styles} styles: choose one with --style-index K "
                             f"(0..{n_styles - 1}) or blend them with --style-mix W0,...,W{n_styles - 1}")
        if index is not None and not 0 <= index < n_styles:
            raise ValueError(f"--style-index {index}: this model has {n_styles} styles, 0..{n_styles - 1}")
        try:
            weights = normalise_mix(mix if mix is not None else [float(k == index) for k in range(n_styles)], n_styles)
        except ValueError as error:
            raise ValueError(f"--style-mix: {error}") from None
        return StyleMixed(net, weights)

    return bind
