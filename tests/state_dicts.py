"""Test helper: how far apart two networks' weights are."""
import torch


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference over every tensor of the two state dicts (0.0: bitwise equal)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa if sa[k].numel())
