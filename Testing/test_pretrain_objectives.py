"""The per-method objectives on real cubes: what they switch on, that they learn (overfit a
fixed batch), and that the adversarial game pulls encoder and discriminator apart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pretrain_data import one_torch_thread

from SARCore.cubes import CubeDataset
from SARCore.io.modality import CT
from SARCore.pretrain.config import config_from_mapping
from SARCore.pretrain.objectives import PretrainObjective
from SARCore.pretrain.runner import make_optimizer


def fixed_batch(cubes_dir, size: int = 4) -> dict[str, torch.Tensor]:
    """``size`` real cubes: both modalities, several scales (CT cases first in the store)."""
    dataset = CubeDataset(cubes_dir)
    picks = [0, 5, len(dataset) - 1, len(dataset) - 6][:size]
    items = [dataset[i] for i in picks]
    return {key: torch.stack([torch.as_tensor(item[key]) for item in items])
            for key in ("cube", "scale", "modality")}


def test_methods_switch_on_their_heads():
    expected = {"sar": ("scale_head", "discriminator"), "genesis": (), "sa": ("scale_head",),
                "mial": ("discriminator",)}
    for method, heads in expected.items():
        objective = PretrainObjective(config_from_mapping({"method": method,
                                                           "width_divisor": 8}))
        present = tuple(name for name in ("scale_head", "discriminator", "head")
                        if getattr(objective, name) is not None)
        assert present == heads, method
        assert objective.corruption is not None and not objective.find_unused_parameters
    for method in ("rotation", "rpl", "jigsaw", "cpc"):
        objective = PretrainObjective(config_from_mapping({"method": method,
                                                           "width_divisor": 8}))
        assert objective.head is not None and objective.corruption is None
        assert objective.find_unused_parameters  # DDP: the decoder gets no gradient
        assert all(key.startswith(("unet.encoder.", "head."))
                   for key in objective.model_state_dict())


def test_single_scale_ablation_drops_the_scale_head():
    objective = PretrainObjective(config_from_mapping({"method": "sar", "scales": [2],
                                                       "width_divisor": 8}))
    assert objective.terms == ("restoration", "adversarial") and objective.scale_head is None


def test_param_groups_carry_the_paper_learning_rates():
    config = config_from_mapping({"method": "sar", "width_divisor": 8})
    optimizer = make_optimizer(PretrainObjective(config), config)
    assert isinstance(optimizer, torch.optim.SGD)
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == {
        "unet": 1.0, "scale_head": 0.1, "discriminator": 0.001}
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)


@pytest.mark.parametrize("method", ["sar", "genesis", "sa", "mial"])
def test_loss_falls_on_a_fixed_batch(method, small_real_cubes_dir):
    """Overfitting a CT and an MRI cube: the minimised part of the loss falls clearly.

    With gradient reversal, ``loss`` includes L_adv, which the encoder *ascends* (paper
    eq. 3: min over E, max over M of the log-likelihood), so for sar/mial the descending
    part is ``loss - L_adv`` and L_adv itself rises while the encoder (lr 1.0) out-runs the
    discriminator (lr 0.001).
    """
    batch = {key: value[[0, 3]] for key, value in fixed_batch(small_real_cubes_dir).items()}
    torch.manual_seed(0)
    config = config_from_mapping({"method": method, "width_divisor": 8})
    objective = PretrainObjective(config)
    optimizer = make_optimizer(objective, config)
    minimised, adversarial = [], []
    with one_torch_thread():
        for _ in range(16):
            # The same corruption every step: a fixed problem the network can overfit.
            terms = objective(batch, torch.Generator().manual_seed(7))
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            adversarial.append(float(terms.get("adversarial", torch.zeros(())).detach()))
            minimised.append(float(terms["loss"].detach()) - adversarial[-1])
    first, last = sum(minimised[:3]) / 3, sum(minimised[-3:]) / 3
    assert last < 0.6 * first, (method, [round(v, 4) for v in minimised])
    if "adversarial" in objective.terms:
        assert adversarial[-1] > adversarial[0] + 0.1, adversarial


def test_adversarial_gradients_oppose_the_discriminator(small_real_cubes_dir):
    """Gradient reversal: the encoder gets exactly minus the gradient it would get if it
    helped the discriminator, so a small step of each changes L_adv in opposite ways."""
    batch = fixed_batch(small_real_cubes_dir)
    torch.manual_seed(0)
    objective = PretrainObjective(config_from_mapping({"method": "sar", "width_divisor": 8}))
    encoder_param = objective.unet.encoder[1][0][0].weight
    disc_param = objective.discriminator.convs[0][0].weight
    with one_torch_thread():
        corrupted, _ = objective.corruption(batch["cube"], torch.Generator().manual_seed(1))
    objective.corruption = lambda cubes, generator: (cubes, cubes)  # fed pre-corrupted
    inputs, is_ct = {**batch, "cube": corrupted}, (batch["modality"] == CT).float()

    def trained() -> torch.Tensor:  # L_adv as the objective computes it (reversed taps)
        return objective(inputs, torch.Generator())["adversarial"]

    def plain() -> torch.Tensor:  # the discriminator's BCE without reversal
        logit = objective.discriminator(objective.unet.encode(corrupted))
        return F.binary_cross_entropy_with_logits(logit.float(), is_ct)

    with one_torch_thread():
        reversed_grads = torch.autograd.grad(trained(), [encoder_param, disc_param])
        plain_grads = torch.autograd.grad(plain(), [encoder_param, disc_param])
        assert reversed_grads[0].abs().sum() > 0
        assert torch.allclose(reversed_grads[0], -plain_grads[0], rtol=1e-4, atol=1e-10)
        assert torch.allclose(reversed_grads[1], plain_grads[1], rtol=1e-4, atol=1e-10)
        # A small step down the training gradient lowers L_adv through the discriminator
        # and raises it through the encoder (first order, so the step is tiny; train-mode
        # batch norm normalises with the batch's statistics, so only the weights differ).
        with torch.no_grad():
            before = float(plain())
            for param, grad, sign in ((disc_param, reversed_grads[1], -1.0),
                                      (encoder_param, reversed_grads[0], 1.0)):
                step = 1e-2 * grad / grad.norm()
                param.sub_(step)
                after = float(plain())
                param.add_(step)
                assert sign * (after - before) > 0, (sign, before, after)


def test_terms_report_accuracies(small_real_cubes_dir):
    batch = fixed_batch(small_real_cubes_dir)
    objective = PretrainObjective(config_from_mapping({"method": "sar", "width_divisor": 8}))
    with one_torch_thread(), torch.no_grad():
        terms = objective.eval()(batch, torch.Generator().manual_seed(0))
    assert set(terms) == {"loss", "monitor", "restoration", "scale", "scale_acc",
                          "adversarial", "disc_acc"}
    for key in ("scale_acc", "disc_acc"):
        assert 0.0 <= float(terms[key]) <= 1.0
    expected = 10 * terms["restoration"] + terms["scale"] + terms["adversarial"]
    assert torch.isclose(terms["loss"], expected)
