"""The eight pre-training methods as switches: which heads and losses each one turns on.

A method is configuration, not a subclass: :class:`PretrainObjective` reads the switches
of its :class:`MethodSpec`. Paper Table 2 names the rows:

===========  ==============  =====  ===========  ===============================
method       restoration     scale  adversarial  notes
===========  ==============  =====  ===========  ===============================
sar          10 * MSE        CE     BCE (GRL)    the paper's full objective (eq. 4)
genesis      1 * MSE         -      -            Models Genesis: MSE, SGD lr 1.0
sa           10 * MSE        CE     -            ablation: SAR without MIAL
mial         10 * MSE        -      BCE (GRL)    ablation: SAR without SA
rotation     -               -      -            Taleb 3D rotation (encoder only)
rpl          -               -      -            relative patch location
jigsaw       -               -      -            3D jigsaw
cpc          -               -      -            contrastive predictive coding
===========  ==============  =====  ===========  ===============================

Genesis keeps MG's own weight 1 on the MSE (with SGD lr 1.0 that is MG's exact step);
the SAR ablations keep SAR's beta = 10 so that they differ from SAR by one module only.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Loss weights of the paper (alpha = 1 for scale, beta = 10 for restoration; L_adv at 1).
SAR_RESTORATION_WEIGHT = 10.0
GENESIS_RESTORATION_WEIGHT = 1.0


@dataclass(frozen=True)
class MethodSpec:
    """What one method trains: the U-Net decoder or not, and which heads."""

    name: str
    restoration: bool = False
    scale: bool = False
    adversarial: bool = False
    baseline: str | None = None                 # key of BASELINE_TASKS
    restoration_weight: float = SAR_RESTORATION_WEIGHT
    description: str = ""

    @property
    def encoder_only(self) -> bool:
        """Baselines train (and transfer) the encoder only; the decoder stays random."""
        return self.baseline is not None

    @property
    def default_optimizer(self) -> str:
        """SGD with momentum for the restoration family (paper), Adam for Taleb's tasks."""
        return "adam" if self.encoder_only else "sgd"


METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("sar", restoration=True, scale=True, adversarial=True,
               description="scale-aware restoration with modality-invariant adversarial "
                           "learning (the paper)"),
    MethodSpec("genesis", restoration=True, restoration_weight=GENESIS_RESTORATION_WEIGHT,
               description="Models Genesis restoration"),
    MethodSpec("sa", restoration=True, scale=True,
               description="restoration + scale-aware head (SAR without MIAL)"),
    MethodSpec("mial", restoration=True, adversarial=True,
               description="restoration + modality discriminator (SAR without SA)"),
    MethodSpec("rotation", baseline="rotation", description="3D rotation prediction"),
    MethodSpec("rpl", baseline="rpl", description="3D relative patch location"),
    MethodSpec("jigsaw", baseline="jigsaw", description="3D jigsaw puzzle"),
    MethodSpec("cpc", baseline="cpc", description="3D contrastive predictive coding"),
)}

#: Default learning rates per optimizer: (U-Net, SA head, MIAL discriminator, baseline head).
#: SGD: the paper's 1.0 / 0.1 / 0.001 (the baseline head takes the SA head's 0.1).
#: Adam: Taleb's 1e-4 for everything (Adam normalises gradient scale, so the SGD ratios
#: between modules have no meaning there).
DEFAULT_LEARNING_RATES: dict[str, dict[str, float]] = {
    "sgd": {"lr_unet": 1.0, "lr_scale": 0.1, "lr_adversarial": 0.001, "lr_head": 0.1},
    "adam": {"lr_unet": 1e-4, "lr_scale": 1e-4, "lr_adversarial": 1e-4, "lr_head": 1e-4},
}




def active_terms(spec: MethodSpec, n_scales: int) -> tuple[str, ...]:
    """Loss terms a run trains: the scale head needs at least two scales to tell apart.

    Table 3's single-scale ablations therefore train SAR without the SA head (a one-class
    cross-entropy would be zero from the start and teach nothing).
    """
    if spec.baseline is not None:
        return (spec.baseline,)
    terms = ["restoration"]
    if spec.scale and n_scales >= 2:
        terms.append("scale")
    if spec.adversarial:
        terms.append("adversarial")
    return tuple(terms)
