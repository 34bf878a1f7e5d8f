"""Data Impression synthesis: optimise inputs until the frozen teacher outputs the sampled soft targets.

Nayak et al., "Zero-Shot Knowledge Distillation in Deep Networks", ICML 2019 (PMLR v97), Sec. 3.2:

.. math::
    \\bar{x} = \\arg\\min_x \\; L_{CE}\\big(y, \\; \\mathrm{softmax}(T(x; \\theta) / \\tau)\\big)

with the teacher's parameters ``theta`` fixed and ``tau = 20``. Images live in pixel space ``[0, 1]`` and reach the
teacher through its input normalisation ``(x - mean) / std``.

Optionally (not in the paper) the objective adds two image priors, in the form DeepInversion uses them (Yin et al.,
"Dreaming to Distill", CVPR 2020, Eq. 3, ``R_prior = a_tv R_TV + a_l2 R_l2``; the total-variation prior goes back to
Mahendran and Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015):

.. math::
    R_{TV}(x) = \\mathrm{mean}\\,|x_{i+1,j} - x_{i,j}| + \\mathrm{mean}\\,|x_{i,j+1} - x_{i,j}|, \\qquad
    R_{\\ell_2}(x) = \\mathrm{mean}\\,\\big((x - \\mu)/\\sigma\\big)^2

per image. Without them Data Impressions are saturated textures; with them they are smoother and darker, and
students distilled on them generalise better to real images (measured: ``docs/method.md``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import tempered_cross_entropy
from .validation import check_bool, check_choice, check_int, check_number

__all__ = [
    "SynthesisConfig",
    "SynthesisResult",
    "SynthesisLoss",
    "total_variation",
    "frozen_teacher",
    "batchnorm_layers",
    "module_device",
    "native_bf16",
    "random_view",
    "resolve_precision",
    "scored_result",
    "synthesize_batch",
]

_logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")
LR_SCHEDULES = ("constant", "cosine")
BN_DISTANCES = ("deepinversion", "standardized")
METHODS = ("pixels", "generator")
#: the settings of ``method: generator`` with their defaults (in the store key only with that method)
GENERATOR_DEFAULTS = {"first_iters": 100, "generator_width": 8, "latent_dim": 64, "generator_lr": 5e-3, "meta_lr": 0.5}
_ADAM_BETAS, _ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


@dataclass(frozen=True)
class SynthesisConfig:
    """Settings of the optimisation that makes Data Impressions.

    Attributes:
        num_iters: the most Adam steps a Data Impression gets (the paper's release: 1500). 0 keeps the initial
            uniform noise unoptimised: the noise baseline that shows what synthesis adds. With ``method:
            generator``: the steps each batch after the first adapts the generator.
        lr: Adam learning rate in pixel units (the release: 0.001 with 1500 steps); with ``method: generator``, that
            of the latent codes.
        batch_size: Data Impressions optimised together; also the size of one store part.
        temperature: softmax temperature ``tau`` of the teacher (paper: 20).
        minmax_rescale: rescale the whole batch to [0, 1] by its min and max after every step, as the authors'
            release does (not in the paper); off by default, which clamps to [0, 1] instead.
        warm_start: start each batch of a (class, beta) row from the previous batch's images, as the release does.
        precision: ``fp32``; ``bf16`` to run the teacher under bfloat16 autocast (images, Adam state and the
            reported final loss stay fp32), which pays only where the hardware has bf16 units (AVX512-BF16/AMX CPUs,
            GPUs) and is emulated, several times slower than fp32, elsewhere (a warning says so); or ``auto``: bf16
            where the device has bf16 units, else fp32 (resolved before the store key is made, so the key names
            what ran).
        channels_last: run the teacher on a channels-last copy of itself and its input; a teacher whose forward
            fails on channels-last tensors (one that calls ``.view`` on a feature map) falls back to the default
            memory format, with a warning.
        compile: run the teacher's forward and backward through ``torch.compile`` (a one-off compile of tens of
            seconds per store; needs a C++ compiler on CPU).
        early_stop_tol: stop optimising a Data Impression once its loss fell by less than this (nats) over the
            last ``early_stop_every`` steps; converged ones leave the batch, so the rest run on fewer images.
            0 disables it (every image gets ``num_iters`` steps).
        early_stop_every: steps between two convergence checks.
        lr_schedule: ``constant`` (the paper's), or ``cosine``: the learning rate falls from ``lr`` to 0 over
            ``num_iters`` steps, which settles the images in fewer steps.
        tv_weight: weight of the total-variation prior ``R_TV`` (pixel space) in the objective; 0: the paper's.
        l2_weight: weight of the ``R_l2`` prior on the normalised input (pulls pixels towards the input mean);
            0: the paper's.
        bn_weight: weight of the BatchNorm-statistics prior ``R_BN`` (DeepInversion, Yin et al. CVPR 2020,
            Eq. 4): for every BatchNorm layer of the teacher, the distance between the synthetic batch's per-channel
            mean and variance at its input and the layer's running statistics. 0: off (the paper's); needs a teacher
            with BatchNorm layers. The statistics are those of the whole training data, so with it every batch
            (store part) mixes all classes in proportion instead of holding one class.
        bn_first_multiplier: DeepInversion's heavier first layer: the first BatchNorm layer's term is multiplied
            by this. Only with ``bn_weight`` > 0.
        bn_distance: how a layer's term measures the distance. ``deepinversion``: Eq. 4 as published, the L2 norms
            of the mean and variance differences, summed over layers; its terms grow with a layer's width and
            activation scale, so deep, wide layers outweigh the first. ``standardized``: each difference in the
            units the layer normalises by, ``(mu - mu_run) / sqrt(var_run + eps)`` and ``var / (var_run + eps) - 1``,
            as root-mean-squares over the channels and averaged over the layers, so every layer counts alike
            whatever the teacher's depth, width and scale. Only with ``bn_weight`` > 0.
        jitter: at every step the teacher sees the batch rolled by a random offset of up to this many pixels in
            each direction (DeepInversion's jitter, Yin et al. CVPR 2020, Sec. 3), so the class evidence it
            optimises must hold wherever it sits; 0: off (the paper's).
        flip: at every step the teacher sees the batch mirrored left-right with probability 1/2 (DeepInversion's
            flips); false: off (the paper's).
        method: what is optimised. ``pixels`` (the paper's): every image, from uniform noise. ``generator``:
            amortised synthesis (Fang et al., "Up to 100x Faster Data-free Knowledge Distillation", AAAI 2022): a
            small generator makes each batch from latent codes, and each batch adapts a meta-learned generator for
            ``num_iters`` Adam steps (its weights at ``generator_lr``, the batch's latents at ``lr``) instead of
            optimising pixels from noise (:mod:`zskd_plugin.amortised`). The parts of a store then follow each
            other, so one process makes them all.
        first_iters: with ``method: generator``, the steps of the first batch, which starts from a random generator.
        generator_width: with ``method: generator``, the generator's channels at full resolution (twice that at
            lower resolutions).
        latent_dim: with ``method: generator``, the size of each image's latent code.
        generator_lr: with ``method: generator``, Adam's learning rate on the generator's weights.
        meta_lr: with ``method: generator``, the Reptile step: after each batch the meta-learned initialisation moves
            this fraction of the way towards the batch's adapted generator.
    """

    num_iters: int = 200
    lr: float = 0.05
    batch_size: int = 200
    temperature: float = 20.0
    minmax_rescale: bool = False
    warm_start: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    early_stop_tol: float = 0.0
    early_stop_every: int = 10
    lr_schedule: str = "constant"
    tv_weight: float = 0.0
    l2_weight: float = 0.0
    bn_weight: float = 0.0
    bn_first_multiplier: float = 1.0
    bn_distance: str = "deepinversion"
    jitter: int = 0
    flip: bool = False
    method: str = "pixels"
    first_iters: int = GENERATOR_DEFAULTS["first_iters"]
    generator_width: int = GENERATOR_DEFAULTS["generator_width"]
    latent_dim: int = GENERATOR_DEFAULTS["latent_dim"]
    generator_lr: float = GENERATOR_DEFAULTS["generator_lr"]
    meta_lr: float = GENERATOR_DEFAULTS["meta_lr"]

    def __post_init__(self) -> None:
        for name, least in (("num_iters", 0), ("batch_size", 1), ("early_stop_every", 1), ("jitter", 0)):
            check_int(getattr(self, name), f"synthesis {name}", least)
        for name in ("lr", "temperature"):
            check_number(getattr(self, name), f"synthesis {name}", low=0, low_open=True)
        for name in ("early_stop_tol", "tv_weight", "l2_weight", "bn_weight"):
            check_number(getattr(self, name), f"synthesis {name}", low=0)
        check_number(self.bn_first_multiplier, "synthesis bn_first_multiplier", low=0)
        for name in ("minmax_rescale", "warm_start", "channels_last", "compile", "flip"):
            check_bool(getattr(self, name), f"synthesis {name}")
        check_choice(self.lr_schedule, "synthesis lr_schedule", LR_SCHEDULES)
        check_choice(self.precision, "synthesis precision", PRECISIONS)
        check_choice(self.bn_distance, "synthesis bn_distance", BN_DISTANCES)
        check_choice(self.method, "synthesis method", METHODS)
        for name, least in (("first_iters", 0), ("generator_width", 1), ("latent_dim", 1)):
            check_int(getattr(self, name), f"synthesis {name}", least)
        check_number(self.generator_lr, "synthesis generator_lr", low=0, low_open=True)
        check_number(self.meta_lr, "synthesis meta_lr", low=0, high=1, low_open=True)
        self._check_method()
        if self.early_stop_tol > 0 and self.bn_weight > 0:
            raise ValueError(
                "synthesis early_stop_tol needs bn_weight: 0 (the BatchNorm prior is a statistic of the whole batch, "
                "so an image cannot leave it early)"
            )
        if not self.bn_weight and (self.bn_first_multiplier != 1.0 or self.bn_distance != "deepinversion"):
            raise ValueError(
                "synthesis bn_first_multiplier and bn_distance shape the BatchNorm prior, which is off: set bn_weight "
                "> 0 to use them, or leave them out"
            )
        if self.warm_start and self.bn_weight > 0:
            raise ValueError(
                "synthesis warm_start needs bn_weight: 0 (with the BatchNorm prior every batch mixes all classes, so "
                "no batch continues the one before it)"
            )
        if self.early_stop_tol > 0 and (self.jitter or self.flip):
            raise ValueError(
                "synthesis early_stop_tol needs jitter: 0 and flip: false (a randomly shifted or mirrored view makes "
                "the loss jump from step to step, so convergence cannot be read from it)"
            )
        if self.early_stop_tol > 0 and self.minmax_rescale:
            raise ValueError(
                "synthesis early_stop_tol needs minmax_rescale: false (the release's whole-batch rescaling couples "
                "the images, so one cannot stop alone)"
            )

    def _check_method(self) -> None:
        if self.method == "pixels":
            changed = [name for name, value in GENERATOR_DEFAULTS.items() if getattr(self, name) != value]
            if changed:
                raise ValueError(
                    f"synthesis {', '.join(changed)} shape the generator of method: 'generator', which is off: set "
                    "method: 'generator' to use them, or leave them out"
                )
            return
        clashes = {
            "early_stop_tol": self.early_stop_tol > 0,
            "warm_start": self.warm_start,
            "minmax_rescale": self.minmax_rescale,
            "compile": self.compile,
        }
        for name, clash in clashes.items():
            if clash:
                raise ValueError(
                    f"synthesis {name} works on per-image pixel optimisation, not on method: 'generator' (whose "
                    f"images come from a shared generator): leave {name} out, or set method: 'pixels'"
                )


@dataclass
class SynthesisResult:
    """One optimised batch.

    Attributes:
        images: (B, C, H, W) float32 pixel-space images in [0, 1].
        losses: (B,) final cross-entropy between each target and the teacher's tempered softmax (priors excluded).
        agreement: (B,) bool, teacher argmax equals target argmax.
        steps: (B,) Adam steps each image got (fewer than ``num_iters`` where it stopped early).
    """

    images: Tensor
    losses: Tensor
    agreement: Tensor
    steps: Tensor


@contextlib.contextmanager
def frozen_teacher(teacher: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients for the duration; the teacher's previous state is restored after."""
    was_training = teacher.training
    flags = [(p, p.requires_grad) for p in teacher.parameters()]
    teacher.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield teacher
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        teacher.train(was_training)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    return next(iter(module.parameters()), torch.empty(0)).device


def total_variation(x: Tensor) -> Tensor:
    """Per-image anisotropic total variation ``R_TV`` of (B, C, H, W) images: mean absolute difference between
    vertical neighbours plus that between horizontal neighbours."""
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean(dim=(1, 2, 3)) + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(
        dim=(1, 2, 3)
    )


class ChannelWindowLRN(nn.Module):
    """``nn.LocalResponseNorm`` computed with a 1x1 convolution for the channel-window sum of squares.

    The same function as torch's (which averages ``x**2`` over a zero-padded window of ``size`` channels, always
    dividing by ``size``): ``x / (k + alpha * window_sum(x**2) / size) ** beta``. A band matrix turns the window sum
    into one small matrix product per pixel, which oneDNN/cuDNN run far faster, forward and backward, than the
    pooling over a padded 5-d view that torch uses (the CIFAR AlexNet's figures: ``docs/performance.md``).
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        c = torch.arange(x.shape[1], device=x.device)
        offset = c.view(1, -1) - c.view(-1, 1)  # input channel minus output channel
        band = (offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)
        window = F.conv2d(x * x, band.to(x.dtype)[:, :, None, None])
        return x / (window * (self.alpha / self.size) + self.k).pow(self.beta)


def _with_fast_lrn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each ``nn.LocalResponseNorm`` as a :class:`ChannelWindowLRN`; ``model`` itself
    when it has none."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.LocalResponseNorm)]
    if not names:
        return model
    model = copy.deepcopy(model)
    for name in names:
        lrn = model.get_submodule(name)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, ChannelWindowLRN(lrn.size, lrn.alpha, lrn.beta, lrn.k))
    return model


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 units: a CUDA GPU that supports bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":  # compute capability 8 (Ampere) and later; earlier GPUs only emulate it
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":  # torch's own CPU feature probes (private, hence looked up defensively)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def resolve_precision(config: SynthesisConfig, device: torch.device) -> SynthesisConfig:
    """``config`` with ``precision: auto`` made concrete for ``device`` (bf16 where it has bf16 units)."""
    if config.precision != "auto":
        return config
    return replace(config, precision="bf16" if native_bf16(device) else "fp32")


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers that keep running statistics, in module order (timm's ``BatchNormAct2d`` is one)."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None and m.running_var is not None
    ]


def _hook_batchnorm_statistics(
    model: nn.Module, terms: list[Tensor], first_multiplier: float, distance: str = "deepinversion"
) -> None:
    """Forward hooks that append, per BatchNorm layer, the distance between its input batch's per-channel
    statistics and its running ones, the first layer's times ``first_multiplier``; statistics in fp32 whatever the
    autocast or memory format.

    ``deepinversion``: ``||mu(x) - mu_run||_2 + ||var(x) - var_run||_2`` (Yin et al. CVPR 2020, Eq. 4), summed
    over layers by the caller. ``standardized``: ``rms((mu(x) - mu_run) / sqrt(var_run + eps)) + rms(var(x) /
    (var_run + eps) - 1)`` over the channels (the units the layer itself normalises by), divided by the number of
    layers so the caller's sum is their mean."""
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(
            f"synthesis bn_weight needs a teacher with BatchNorm layers; {type(model).__name__} has none: set "
            "bn_weight: 0 (and use the image priors tv_weight/l2_weight instead)"
        )

    def hook(module: nn.modules.batchnorm._BatchNorm, args: tuple[Tensor, ...], out: Tensor) -> None:
        x = args[0].float()
        dims = [d for d in range(x.dim()) if d != 1]  # every axis but the channels
        mean, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
        run_mean, run_var = module.running_mean.float(), module.running_var.float()
        if distance == "standardized":  # rms as a norm over sqrt(C): its gradient at an exact match is 0, not NaN
            run_var = run_var + module.eps
            mean_gap = torch.linalg.vector_norm((mean - run_mean) / run_var.sqrt())
            var_gap = torch.linalg.vector_norm(var / run_var - 1)
            term = (mean_gap + var_gap) / (math.sqrt(mean.numel()) * len(layers))
        else:
            term = torch.linalg.vector_norm(mean - run_mean) + torch.linalg.vector_norm(var - run_var)
        terms.append(term * first_multiplier if module is layers[0] else term)

    for layer in layers:
        layer.register_forward_hook(hook)


class SynthesisLoss:
    """The per-image objective as the engine runs it: normalise, teacher forward (bf16 autocast, channels-last and
    ``torch.compile`` as configured; ``nn.LocalResponseNorm`` as :class:`ChannelWindowLRN`), tempered cross-entropy
    against the targets in fp32, plus the image priors ``tv_weight * R_TV + l2_weight * R_l2`` when set.

    Build it once per store and pass it to every :func:`synthesize_batch` call, so a compiled teacher is compiled
    once. The teacher must be frozen (:func:`frozen_teacher`) while it is used.
    """

    def __init__(self, teacher: nn.Module, mean: Tensor, std: Tensor, config: SynthesisConfig) -> None:
        device = module_device(teacher)
        self.device = device
        self.mean = mean.to(device).view(1, -1, 1, 1)
        self.std = std.to(device).view(1, -1, 1, 1)
        self.temperature = config.temperature
        self.tv_weight, self.l2_weight = config.tv_weight, config.l2_weight
        self.channels_last = config.channels_last
        config = resolve_precision(config, device)
        self.bf16 = config.precision == "bf16"
        if self.bf16 and not native_bf16(device):
            _logger.warning(
                "synthesis precision 'bf16' on a %s without bf16 units: autocast emulates it, several times slower "
                "than fp32 (4x for LeNet-5 on an AVX2 CPU, docs/performance.md). Set precision: 'auto' (bf16 only "
                "where it pays) or 'fp32'",
                device.type.upper() if device.type == "cpu" else device.type,
            )
        model = _with_fast_lrn(teacher)  # a copy when it swaps anything: the caller's teacher is left as it was
        if self.channels_last:  # converts parameters in place, so on a copy too
            model = (copy.deepcopy(model) if model is teacher else model).to(memory_format=torch.channels_last)
        self.bn_weight = config.bn_weight
        self._bn_terms: list[Tensor] = []
        if self.bn_weight:
            model = model if model is not teacher else copy.deepcopy(model)  # hooks go on the engine's own copy
            _hook_batchnorm_statistics(model, self._bn_terms, config.bn_first_multiplier, config.bn_distance)
        self.model = model
        self._compile = config.compile
        self._fn: Callable[[Tensor, Tensor], Tensor] = torch.compile(self._loss) if config.compile else self._loss
        self._format_unproven = self.channels_last  # until a first forward shows the teacher takes channels-last

    def _loss(self, x: Tensor, targets: Tensor) -> Tensor:
        z = (x - self.mean) / self.std
        if self.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        self._bn_terms.clear()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(z)
        loss = tempered_cross_entropy(logits.float(), targets, self.temperature)
        if self.tv_weight:
            loss = loss + self.tv_weight * total_variation(x)
        if self.l2_weight:
            loss = loss + self.l2_weight * z.float().pow(2).mean(dim=(1, 2, 3))
        if self.bn_weight:
            # a statistic of the whole batch: each image carries an equal share, so the batch's summed objective
            # holds it once per image, as a mean objective over the batch would hold it once
            loss = loss + self.bn_weight * sum(self._bn_terms)
        return loss

    def __call__(self, x: Tensor, targets: Tensor) -> Tensor:
        """(B,) objective of pixel-space images ``x`` against (B, K) ``targets``."""
        if self._format_unproven:
            self._format_unproven = False
            self._probe_channels_last(x[:2])
        return self._fn(x, targets)

    def _probe_channels_last(self, x: Tensor) -> None:
        """One eager forward of two images in channels-last, without gradients: a teacher that fails on it (a
        forward that calls ``.view`` on a feature map) falls back to the default memory format. Errors of the
        real (possibly compiled) loss are left to surface as they are."""
        z = ((x.detach() - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        try:
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                self.model(z)
        except RuntimeError as exc:
            self._fall_back_to_contiguous(exc)
        finally:
            self._bn_terms.clear()

    def _fall_back_to_contiguous(self, exc: RuntimeError) -> None:
        """Run the teacher in the default memory format from now on: some models (a ``forward`` that calls
        ``x.view(...)`` on a feature map) cannot take channels-last tensors. If it fails that way too, the error is
        the teacher's own and surfaces from the next call."""
        _logger.warning(
            "the teacher failed on a channels-last input (%s); synthesis goes on in the default memory format. Set "
            "synthesis channels_last: false to skip this attempt",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        self.channels_last = False
        self.model = self.model.to(memory_format=torch.contiguous_format)
        self._fn = torch.compile(self._loss) if self._compile else self._loss


def random_view(x: Tensor, config: SynthesisConfig, generator: torch.Generator) -> Tensor:
    """The batch as the teacher sees it at one step: rolled by one random offset of up to ``jitter`` pixels and
    mirrored left-right with probability 1/2 when ``flip`` is set (one draw for the whole batch, as DeepInversion
    does); ``x`` itself when both are off, without drawing from ``generator``."""
    if config.jitter:
        dy, dx = torch.randint(-config.jitter, config.jitter + 1, (2,), generator=generator).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if config.flip and bool(torch.rand((), generator=generator) < 0.5):
        x = torch.flip(x, dims=(3,))
    return x


def synthesize_batch(
    teacher: nn.Module,
    targets: Tensor,
    input_size: tuple[int, int, int],
    mean: Tensor,
    std: Tensor,
    config: SynthesisConfig,
    generator: torch.Generator,
    init: Tensor | None = None,
    loss_fn: SynthesisLoss | None = None,
) -> SynthesisResult:
    """Optimise one batch of Data Impressions for ``targets``.

    Every image has its own Adam state (the update is element-wise, so this is exactly ``torch.optim.Adam`` on the
    batch). With ``early_stop_tol`` set, images whose loss has converged leave the batch and later steps run on the
    rest only.

    Args:
        teacher: frozen classifier (wrap the call in :func:`frozen_teacher`).
        targets: (B, K) soft labels on the simplex.
        input_size: (C, H, W) of the teacher's input.
        mean: (C,) input normalisation mean.
        std: (C,) input normalisation std.
        config: optimisation settings.
        generator: CPU generator for the uniform [0, 1] initialisation (not drawn from when ``init`` is given) and
            for the jitter and flips.
        init: optional (B, C, H, W) pixel-space starting images (warm start).
        loss_fn: the engine's loss, built once per store; made here from ``teacher`` and ``config`` when omitted.

    Returns:
        The optimised images with their final per-sample losses (fp32 teacher, whatever the engine precision).

    Raises:
        FloatingPointError: the loss became NaN or Inf.
    """
    device = module_device(teacher)
    loss_fn = loss_fn or SynthesisLoss(teacher, mean, std, config)
    batch = targets.shape[0]
    targets = targets.to(device)
    if init is None:
        init = torch.rand((batch, *input_size), generator=generator)
    images = init.to(device=device, dtype=torch.float32).clone()
    steps = torch.full((batch,), config.num_iters, dtype=torch.long)
    # the working set: images still being optimised, with their Adam moments, targets and global indices
    x, y, active = images.clone(), targets, torch.arange(batch, device=device)
    exp_avg, exp_avg_sq = torch.zeros_like(x), torch.zeros_like(x)
    last_checked = torch.full((batch,), math.inf, device=device)
    (beta1, beta2), early_stop = _ADAM_BETAS, config.early_stop_tol > 0
    for step in range(1, config.num_iters + 1):
        x.requires_grad_(True)
        losses = loss_fn(random_view(x, config, generator), y)
        (grad,) = torch.autograd.grad(losses.sum(), x)
        x = x.detach()
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(_ADAM_EPS)
        lr = config.lr
        if config.lr_schedule == "cosine":
            lr *= 0.5 * (1.0 + math.cos(math.pi * (step - 1) / config.num_iters))
        x.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))
        if config.minmax_rescale:
            lo, hi = x.min(), x.max()
            x.sub_(lo).div_((hi - lo).clamp_min(1e-12))
        else:
            x.clamp_(0.0, 1.0)
        if step % config.early_stop_every:
            continue
        losses = losses.detach()
        if not torch.isfinite(losses).all():
            raise FloatingPointError(f"synthesis loss became NaN or Inf at step {step}")
        if not early_stop:
            continue
        done = (last_checked - losses) < config.early_stop_tol
        last_checked = losses
        if done.any():
            images[active[done]] = x[done]
            steps[active[done].cpu()] = step
            keep = ~done
            x, y, active, exp_avg, exp_avg_sq, last_checked = (
                t[keep] for t in (x, y, active, exp_avg, exp_avg_sq, last_checked)
            )
            if active.numel() == 0:
                break
    images[active] = x
    return scored_result(teacher, images, targets, mean, std, config.temperature, steps)


def scored_result(
    teacher: nn.Module, images: Tensor, targets: Tensor, mean: Tensor, std: Tensor, temperature: float, steps: Tensor
) -> SynthesisResult:
    """A finished batch with its final scores: the fp32 teacher's tempered cross-entropy against the targets
    (priors excluded) and argmax agreement, on the CPU.

    Raises:
        FloatingPointError: the teacher's output is NaN or Inf on the images.
    """
    device = module_device(teacher)
    with torch.no_grad():
        logits = teacher((images - mean.to(device).view(1, -1, 1, 1)) / std.to(device).view(1, -1, 1, 1))
        losses = tempered_cross_entropy(logits, targets, temperature)
        if not torch.isfinite(losses).all():
            raise FloatingPointError("teacher output is NaN or Inf on the synthesised images")
        agreement = logits.argmax(dim=1) == targets.argmax(dim=1)
    return SynthesisResult(images=images.cpu(), losses=losses.cpu(), agreement=agreement.cpu(), steps=steps)
