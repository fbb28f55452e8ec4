import math

import pytest
import torch

from cyclestyle.image_pool import ImagePool
from cyclestyle.losses import AdversarialLoss
from cyclestyle.schedules import LRMultiplier


def test_lsgan_is_mse_to_one_and_zero():
    loss = AdversarialLoss("lsgan")
    real, fake = torch.full((2, 1, 3, 3), 0.5), torch.full((2, 1, 3, 3), 2.0)
    assert loss.generator(fake).item() == pytest.approx(1.0)  # (2 - 1)^2
    assert loss.discriminator(real, fake).item() == pytest.approx(0.5 * (0.25 + 4.0))


def test_vanilla_is_bce_with_logits():
    loss = AdversarialLoss("vanilla")
    zeros = torch.zeros(4)
    assert loss.generator(zeros).item() == pytest.approx(math.log(2))
    assert loss.discriminator(zeros, zeros).item() == pytest.approx(math.log(2))
    assert loss.generator(torch.full((4,), 20.0)).item() < 1e-6


def test_hinge():
    loss = AdversarialLoss("hinge")
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert loss.discriminator(real, fake).item() == pytest.approx(0.5 * (0.5 + 0.75))
    assert loss.generator(fake).item() == pytest.approx(0.75)


def test_unknown_gan_mode_names_the_setting():
    with pytest.raises(ValueError, match=r"model\.gan_mode"):
        AdversarialLoss("wgan")


def test_pool_of_size_zero_passes_fakes_through():
    fakes = torch.randn(3, 3, 4, 4)
    assert ImagePool(0).query(fakes) is fakes


def test_pool_fills_then_mixes_history_and_new_fakes():
    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    assert torch.equal(pool.query(first), first)  # filling: returns what it got
    assert len(pool.images) == 4
    returned_old = returned_new = 0
    for step in range(20):
        new = torch.full((4, 3, 2, 2), 100.0 + step)
        out = pool.query(new)
        for image in out:
            if float(image[0, 0, 0]) == 100.0 + step:
                returned_new += 1
            else:
                returned_old += 1
        assert len(pool.images) == 4
    assert returned_old > 10 and returned_new > 10  # about half of each


def test_pool_state_round_trip_gives_identical_future():
    a = ImagePool(3, seed=5)
    for _ in range(3):
        a.query(torch.randn(2, 3, 2, 2))
    b = ImagePool(3, seed=99)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 2, 2)
    assert torch.equal(a.query(x), b.query(x))
    assert all(torch.equal(p, q) for p, q in zip(a.images, b.images))


def test_negative_pool_size_names_the_setting():
    with pytest.raises(ValueError, match=r"model\.pool_size"):
        ImagePool(-1)


def test_linear_schedule_is_constant_then_decays_to_zero():
    f = LRMultiplier("linear", constant=100, decay=100)
    assert [f(t) for t in (0, 99, 100, 150, 200, 250)] == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]


def test_cosine_and_step_schedules():
    cos = LRMultiplier("cosine", constant=10, decay=10)
    assert cos(5) == 1.0 and cos(15) == pytest.approx(0.5) and cos(20) == pytest.approx(0.0)
    step = LRMultiplier("step", step_size=3, gamma=0.5)
    assert [step(t) for t in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]


def test_unknown_schedule_names_the_setting():
    with pytest.raises(ValueError, match=r"model\.scheduler\.name"):
        LRMultiplier("exponential")


@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
def test_label_free_losses_equal_the_textbook_formulas(mode):
    loss, logits = AdversarialLoss(mode), torch.randn(2, 1, 30, 30) * 3
    textbook = (torch.nn.functional.mse_loss if mode == "lsgan" else torch.nn.functional.binary_cross_entropy_with_logits)
    ones, zeros = torch.ones_like(logits), torch.zeros_like(logits)
    torch.testing.assert_close(loss.generator(logits), textbook(logits, ones))
    torch.testing.assert_close(loss.discriminator(logits, -logits), 0.5 * (textbook(logits, ones) + textbook(-logits, zeros)))
