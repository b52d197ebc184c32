"""Conditional WGAN-GP feature generator with decoder and embedding losses (paper §3.1, eq. 1-2):
``x̃ = G(z, t)`` against a critic D with gradient penalty, plus ``α MSE(Dec(x̃), t) + β L_emb`` on G; the recipe
of the reference code (``src/model_generator.py`` ``optimize_params``; α, β: docs/fidelity.md; docs/plugins.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn
from torch.optim import Optimizer

from avood_core.errors import ConfigError, DataError, NotFittedError
from avood_core.fusion import FusionParams, fusion_class
from avood_core.limits import bounded
from avood_core.train.loop import LoopComponent, Training, resolve, update
from avood_core.train.precision import AUTO_PRECISION_HELP, AutoPrecision, adam, autocast
from avood_core.protocols import FitContext, Generator, TorchComponent
from avood_core.task import AVSamples
from avood_core.train.loops import ClassBalancedSampler
from avood_plugins._init import reference_init

METRICS = ("d_loss", "g_loss", "dec_loss", "wasserstein")
_GEN_CHUNK = 8192


class WGANGPParams(FusionParams):
    """Hyperparameters of :class:`WGANGP`; defaults are the paper's reference values."""

    fusion: str = Field("concat",
        description="What the generator models and synthesizes: concat = a ⊕ v (the paper's), audio or video (that "
        "modality alone; the stages trained on its output must then use a fusion reading only it). Only fusions "
        "whose output is the concatenation of the modalities they read fit here.")

    noise_dim: int = bounded("width", 1024, "Dimension nz of the noise z ~ N(0, I).")
    hidden: int = bounded("width", 512, "Width of both hidden layers of the generator G.")
    critic_hidden: int | None = bounded(
        "width", None, "Hidden width of the critic D; None = (x_dim + t_dim) // 2 (662 for 1024 + 300).")
    decoder_hidden: int | None = bounded(
        "width", None, "Hidden width of the decoder Dec (two layers); None = (x_dim + t_dim) // 2.")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of G, D and Dec.")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1 of all three optimizers.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2 of all three optimizers.")
    critic_iters: int = bounded("iters", 5, "Critic (and decoder) iterations per generator step.")
    gp_lambda: float = Field(10.0, ge=0, description="Gradient-penalty weight λ (eq. 1).")
    alpha: float = Field(0.01, ge=0,
        description="Weight α of the reconstruction loss MSE(Dec(x̃), t) (eq. 2). 0.01 = the reference code "
        "(recons_weight), which produced the paper's tables; the paper's text says 0.1 (set alpha = 0.1, beta = 0.01).")
    beta: float = Field(0.1, ge=0,
        description="Weight β of the cosine embedding loss L_emb (eq. 2). 0.1 = the reference code (cosem_weight); "
        "the paper's text says 0.01.")
    epochs: int = bounded("epochs", 5, "Training epochs.")
    batches_per_epoch: int = bounded(
        "steps", 500, "Generator steps per epoch, one real class-balanced batch each (reference: the "
        "unseen classifier's loader, n_batches = 500).")
    batch_size: int = bounded(
        "batch", 112, low=2, description="Real samples per class-balanced batch; the reference trains the GAN on the unseen "
        "classifier's loader, so per dataset, default = UCF 112 (VGGSound and ActivityNet 256).")
    compat_label_condition: bool = Field(False,
        description="Reproduce reference defect 2 (docs/defects.md): G is trained on the text embedding as usual, but "
        "unseen features are synthesized conditioned on a class-id integer broadcast to a t_dim float vector "
        "instead of the class's text embedding. False (default) = the paper's conditioning on t at synthesis.")
    precision: AutoPrecision = Field("fp32", description=AUTO_PRECISION_HELP)


class WGANGPNet(nn.Module):
    """G, D and Dec in one module so that one ``state_dict`` holds all three."""

    def __init__(self, x_dim: int, t_dim: int, noise_dim: int, hidden: int, critic_hidden: int, decoder_hidden: int):
        super().__init__()
        self.G = nn.Sequential(
            nn.Linear(noise_dim + t_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, x_dim),
        )  # fmt: skip
        self.D = nn.Sequential(nn.Linear(x_dim + t_dim, critic_hidden), nn.LeakyReLU(0.2), nn.Linear(critic_hidden, 1))
        self.Dec = nn.Sequential(
            nn.Linear(x_dim, decoder_hidden), nn.LeakyReLU(0.2),
            nn.Linear(decoder_hidden, decoder_hidden), nn.LeakyReLU(0.2),
            nn.Linear(decoder_hidden, t_dim),
        )  # fmt: skip
        self.noise_dim = noise_dim

    def generate(self, z: Tensor, c: Tensor) -> Tensor:
        return self.G(torch.cat([z, c], dim=1))

    def critic(self, x: Tensor, c: Tensor) -> Tensor:
        return self.D(torch.cat([x, c], dim=1)).squeeze(1)


class WGANGP(LoopComponent, TorchComponent, Generator):
    """Conditional WGAN-GP generator of fused audio-visual features (paper §3.1).
    ``stats.steps``: generator steps (each after ``critic_iters`` critic/decoder steps); ``stats.samples``: real rows."""

    Params: ClassVar[type[BaseModel]] = WGANGPParams
    quick: ClassVar[Mapping[str, Any]] = {"epochs": 2, "batches_per_epoch": 40}
    audio_dim: int = 0  # where generate splits its output (set at fit)
    precision_used: str | None = None  # params.precision resolved at fit ("auto" -> fp32 / bf16)

    # -- network and state ---------------------------------------------------------------
    def make_net(self, **dims: int) -> WGANGPNet:
        p = self.params
        x_dim, t_dim = dims["x_dim"], dims["t_dim"]
        mid = (x_dim + t_dim) // 2
        net = WGANGPNet(x_dim, t_dim, p.noise_dim, p.hidden, p.critic_hidden or mid, p.decoder_hidden or mid)
        return reference_init(net)

    def extra_scalars(self) -> dict[str, Any]:
        return {"audio_dim": self.audio_dim, "precision": self.precision_used}

    def load_extra(self, scalars: Mapping[str, Any]) -> None:
        self.audio_dim = int(scalars["audio_dim"])
        self.precision_used = scalars.get("precision")  # absent in states saved before "auto" existed

    def _synthesis_condition(self, labels: Tensor, text: Tensor) -> Tensor:
        """The condition c of synthesized rows: the text row, or (defect 2 compat) the class id broadcast to t_dim, as
        the reference's ``generate_syn_feature`` (which reads the id from the test labels; avood never reads test data)."""
        if self.params.compat_label_condition:
            return labels.to(text.device, torch.float32).unsqueeze(1).expand(-1, text.shape[1])
        return text[labels.to(text.device)]

    def _modelled(self, train: AVSamples) -> Tensor:
        """The features the generator models by its fusion, ``a ⊕ v`` (concat, the paper's), ``a`` or ``v``; sets
        ``audio_dim`` (0 for video alone), where :meth:`generate` splits its output."""
        name = self.params.fusion
        cls = fusion_class(name)
        if not cls.splittable:
            raise ConfigError(f"generator.fusion '{name}' mixes the modalities, so its synthetic features cannot be "
                              "split back into audio and video for the other stages; use concat, audio or video")
        self.audio_dim = train.audio_dim if "audio" in cls.modalities else 0
        return torch.cat([getattr(train, m) for m in ("audio", "video") if m in cls.modalities], dim=1)

    # -- training ------------------------------------------------------------------------
    def training(self, train: AVSamples, text: Tensor, ctx: FitContext) -> Training:
        p, device = self.params, ctx.device
        text = torch.as_tensor(text, dtype=torch.float32).to(device)
        if len(train) == 0 or int(train.labels.max()) >= len(text) or int(train.labels.min()) < 0:
            raise DataError(f"{self.label}: train labels must be ids of the {len(text)} text rows (and non-empty)")
        x_all, labels = self._modelled(train).to(device), train.labels.to(device)  # sets audio_dim by the fusion
        precision = resolve(self, ctx)
        net = self.build(device, x_dim=x_all.shape[1], t_dim=text.shape[1])
        opts = [adam(m.parameters(), lr=p.lr, betas=(p.beta1, p.beta2)) for m in (net.G, net.D, net.Dec)]
        sampler = ClassBalancedSampler(train.labels)

        def step(idx: Tensor) -> Tensor:  # training conditions on the text rows, as the reference (defect 2: synthesis)
            return self._step(net, x_all[idx], labels[idx], text[labels[idx]], opts, precision)

        return Training(net, opts[0], METRICS, p.epochs, lambda: (sampler.sample(p.batch_size) for _ in range(p.batches_per_epoch)),
                        p.batches_per_epoch, step, manual=True, hint="lower lr or raise gp_lambda", precision=precision, log_epochs=True)

    def _step(self, net: WGANGPNet, x: Tensor, labels: Tensor, c: Tensor, opts: list[Optimizer], precision: str) -> Tensor:
        """One generator step on the real batch (reference ``optimize_params``): ``critic_iters`` decoder + critic
        iterations with fresh noise each, then a G step and a decoder step on the G loss; returns the mean losses."""
        p = self.params
        opt_g, opt_d, opt_dec = opts
        sums, n = torch.zeros(3, device=x.device), len(x)  # d_loss, dec_loss, wasserstein over the critic iterations
        for _ in range(p.critic_iters):
            # Forward passes only under autocast (its weight-cast cache must not outlive a step).
            with autocast(x.device, precision):
                # Decoder: regress the condition from real features.
                dec_loss = F.mse_loss(net.Dec(x).float(), c)
                # Critic: E[D(x̃)] - E[D(x)] + λ·GP, GP on per-sample 2-norms at interpolates.
                with torch.no_grad():
                    fake = net.generate(torch.randn(n, net.noise_dim, device=x.device), c).float()
                # Real and fake rows in one critic pass (D is row-wise: no batch statistics).
                d_out = net.critic(torch.cat([x, fake]), torch.cat([c, c])).float()
                d_real, d_fake = d_out[:n].mean(), d_out[n:].mean()
                eps = torch.rand(n, 1, device=x.device)
                x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
                grad = torch.autograd.grad(net.critic(x_hat, c).float().sum(), x_hat, create_graph=True)[0]
                gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
                d_loss = d_fake - d_real + p.gp_lambda * gp
            # Dec and D have disjoint parameters and losses: one backward gives each its own
            # gradient, exactly as two separate backward passes would.
            update(dec_loss + d_loss, opt_dec, opt_d)
            sums = sums + torch.stack([d_loss, dec_loss, d_real - d_fake]).detach()
        # G step on the same batch: -E[D(x̃)] + β·L_emb + α·MSE(Dec(x̃), c). D is frozen; Dec is
        # not: it receives α·∇MSE(Dec(x̃), c) and steps after G, as in the reference.
        net.D.requires_grad_(False)
        perm = torch.randperm(n).to(x.device)
        ones = torch.ones(n, device=x.device)
        same = torch.where(labels[perm] == labels, ones, -ones)  # permuted pairs of one class stay matched
        with autocast(x.device, precision):
            fake = net.generate(torch.randn(n, net.noise_dim, device=x.device), c).float()
            emb = F.cosine_embedding_loss(fake, x, ones, margin=0.0) + F.cosine_embedding_loss(
                fake, x[perm], same, margin=0.0
            )
            g_loss = -net.critic(fake, c).float().mean() + p.beta * emb + p.alpha * F.mse_loss(net.Dec(fake).float(), c)
        update(g_loss, opt_g, opt_dec)
        net.D.requires_grad_(True)
        d_mean, dec_mean, w_mean = sums / p.critic_iters
        return torch.stack([d_mean, g_loss.detach(), dec_mean, w_mean])

    # -- synthesis -----------------------------------------------------------------------
    def generate(self, class_ids: Tensor, text: Tensor, n_per_class: int) -> AVSamples:
        """``x̃ = G(z, t_c)``, z ~ N(0, I) drawn on the CPU (device-independent), split at audio_dim."""
        if self.net is None or not self.fitted:
            raise NotFittedError(self.label, "fit or load it before generate")
        net: WGANGPNet = self.net  # type: ignore[assignment]
        labels = torch.as_tensor(class_ids, dtype=torch.long).cpu().repeat_interleave(int(n_per_class))
        text = torch.as_tensor(text, dtype=torch.float32).to(self.device)
        net.eval()
        parts = []
        with torch.inference_mode():
            for chunk in labels.split(_GEN_CHUNK):
                z = torch.randn(len(chunk), net.noise_dim).to(self.device)
                parts.append(net.generate(z, self._synthesis_condition(chunk, text)).float().cpu())
        x = torch.cat(parts) if parts else torch.zeros(0, self.dims["x_dim"])
        return AVSamples.from_x(x, labels, self.audio_dim)
