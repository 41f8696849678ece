"""The PyTorch eager reference for `gan-lab bench`: each lesson model and its optimizers written the
way the course's PyTorch notebooks write them (NCHW, nn.Module layers, torch.optim.Adam), trained on
a fixed batch of random images for a number of steps.

Prints one JSON line: milliseconds per training step (every D and G update of the step), peak
resident memory, the floating-point operations of one step (forward and backward, counted by
torch.utils.flop_counter on one extra step), the thread count and the torch version.

Usage: python bench_reference.py MODEL BATCH STEPS WARMUP THREADS [fp32|bf16] [eager|channels-last|compile]
MODEL is one of dcgan, cdcgan, vae, wgan-gp, infogan. With bf16, the forward passes run under
torch.autocast("cpu", dtype=torch.bfloat16), the backward passes outside it, as PyTorch's
mixed-precision recipe does. The last argument is how an informed user runs the same code:
eager in NCHW (the default, the course notebooks' way), channels-last (one line:
`model.to(memory_format=torch.channels_last)` and channels-last batches), or `torch.compile` on
each network (inductor, channels-last too). A variant this torch cannot run for the model (torch.compile
and the gradient penalty's double backward) prints {"unavailable": reason} instead of a measure.
"""

import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conditional_reference import ConditionalDiscriminator, ConditionalGenerator  # noqa: E402
from dcgan_reference import Discriminator, Generator  # noqa: E402
from vae_reference import Vae  # noqa: E402


BF16 = False
VARIANT = "eager"
VARIANTS = ("eager", "channels-last", "compile")


def net(module):
    """A network as the variant runs it: as written, channels-last, or compiled (channels-last)."""
    if VARIANT == "eager":
        return module
    module = module.to(memory_format=torch.channels_last)
    return torch.compile(module) if VARIANT == "compile" else module


def images(t):
    """A batch of images in the variant's layout."""
    return t if VARIANT == "eager" else t.contiguous(memory_format=torch.channels_last)


def amp():
    """The forward passes' precision: bfloat16 autocast when the run asks for it."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16)


def adam(model, lr=2e-4, betas=(0.5, 0.999)):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas)


class Critic(nn.Module):
    """The DCGAN discriminator with LayerNorm instead of BatchNorm and no sigmoid (WGAN-GP)."""

    def __init__(self, ndf=32, nc=1):
        super().__init__()
        self.conv1 = nn.Conv2d(nc, ndf, 4, 2, 1, bias=False)
        self.ln1 = nn.LayerNorm([ndf, 16, 16])
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False)
        self.ln2 = nn.LayerNorm([ndf * 2, 8, 8])
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False)
        self.ln3 = nn.LayerNorm([ndf * 4, 4, 4])
        self.conv4 = nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False)

    def forward(self, x):
        x = F.leaky_relu(self.ln1(self.conv1(x)), 0.2)
        x = F.leaky_relu(self.ln2(self.conv2(x)), 0.2)
        x = F.leaky_relu(self.ln3(self.conv3(x)), 0.2)
        return self.conv4(x).view(-1)


class InfoGenerator(nn.Module):
    """InfoGAN's MNIST generator (Chen et al., 2016) at 32×32."""

    def __init__(self, nz=74):
        super().__init__()
        self.fc1 = nn.Linear(nz, 1024, bias=False)
        self.bn1 = nn.BatchNorm1d(1024)
        self.fc2 = nn.Linear(1024, 128 * 8 * 8, bias=False)
        self.bn2 = nn.BatchNorm1d(128 * 8 * 8)
        self.convt1 = nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.convt2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, z):
        h = torch.relu(self.bn1(self.fc1(z)))
        h = torch.relu(self.bn2(self.fc2(h))).view(-1, 128, 8, 8)
        h = torch.relu(self.bn3(self.convt1(h)))
        return torch.tanh(self.convt2(h))


class InfoDiscriminator(nn.Module):
    """InfoGAN's MNIST discriminator with the Q head on its last hidden layer."""

    def __init__(self, q_width=12):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 4, 2, 1)
        self.conv2 = nn.Conv2d(64, 128, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128 * 8 * 8, 1024, bias=False)
        self.bn3 = nn.BatchNorm1d(1024)
        self.score = nn.Linear(1024, 1)
        self.q_hidden = nn.Linear(1024, 128)
        self.q_bn = nn.BatchNorm1d(128)
        self.q_out = nn.Linear(128, q_width)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2).flatten(1)
        h = F.leaky_relu(self.bn3(self.fc(h)), 0.2)
        q = self.q_out(F.leaky_relu(self.q_bn(self.q_hidden(h)), 0.2))
        return self.score(h).view(-1), q


def information(q, values, continuous):
    categorical = F.cross_entropy(q[:, :10], values)
    nll = F.gaussian_nll_loss(q[:, 10:12], continuous, torch.ones_like(continuous), full=True, reduction="none")
    return categorical + 0.1 * nll.sum(1).mean()


def dcgan_step(batch):
    g, d = net(Generator()), net(Discriminator())
    opt_g, opt_d = adam(g), adam(d)
    bce = nn.BCELoss()
    x = images(torch.rand(batch, 1, 32, 32) * 2 - 1)

    def step():
        z = torch.randn(batch, 100)
        with amp():
            fake = g(z)
            d_real, d_fake = d(x), d(fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        with amp():
            d_fake_g = d(fake)
            g_loss = bce(d_fake_g, torch.ones_like(d_fake_g))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


def cdcgan_step(batch):
    g, d = net(ConditionalGenerator()), net(ConditionalDiscriminator())
    opt_g, opt_d = adam(g), adam(d)
    x = images(torch.rand(batch, 1, 32, 32) * 2 - 1)
    y = torch.randint(0, 10, (batch,))
    bce = nn.BCEWithLogitsLoss()

    def step():
        z = torch.randn(batch, 100)
        with amp():
            fake = g(z, y)
            real_logits, fake_logits = d(x, y), d(fake.detach(), y)
            d_loss = bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        with amp():
            logits = d(fake, y)
            g_loss = bce(logits, torch.ones_like(logits))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


def vae_step(batch):
    vae = Vae()
    if VARIANT != "eager":
        vae = vae.to(memory_format=torch.channels_last)
    opt = adam(vae)
    encode, decode = vae.encode, vae.decode
    if VARIANT == "compile":
        encode, decode = torch.compile(encode), torch.compile(decode)
    x = images(torch.rand(batch, 1, 32, 32) * 2 - 1)

    def step():
        with amp():
            mu, log_variance = encode(x)
            z = mu + (0.5 * log_variance).exp() * torch.randn_like(mu)
            decoded = decode(z)
            kl = 0.5 * (log_variance.exp() + mu.square() - 1 - log_variance).mean()
            loss = F.mse_loss(decoded, x) + 1e-2 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def wgan_gp_step(batch, n_critic=5, lam=10.0):
    g, d = net(Generator()), net(Critic())
    opt_g, opt_d = adam(g, 1e-4, (0.0, 0.9)), adam(d, 1e-4, (0.0, 0.9))
    x = images(torch.rand(batch, 1, 32, 32) * 2 - 1)

    def step():
        for _ in range(n_critic):
            with amp():
                fake = g(torch.randn(batch, 100))
                alpha = torch.rand(batch, 1, 1, 1)
                mixed = (alpha * x + (1 - alpha) * fake.detach()).requires_grad_(True)
                (grad,) = torch.autograd.grad(d(mixed).sum(), mixed, create_graph=True)
                penalty = lam * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
                d_loss = d(fake.detach()).mean() - d(x).mean() + penalty
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        with amp():
            g_loss = -d(fake).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


def infogan_step(batch):
    g, d = net(InfoGenerator()), net(InfoDiscriminator())
    opt_g, opt_d = adam(g, 1e-3), adam(d, 2e-4)
    x = images(torch.rand(batch, 1, 32, 32) * 2 - 1)
    bce = nn.BCEWithLogitsLoss()

    def step():
        values = torch.randint(0, 10, (batch,))
        continuous = torch.rand(batch, 2) * 2 - 1
        z = torch.cat([torch.randn(batch, 62), F.one_hot(values, 10).float(), continuous], 1)
        with amp():
            fake = g(z)
            (real_score, _), (fake_score, q) = d(x), d(fake.detach())
            d_loss = bce(real_score, torch.ones_like(real_score)) + bce(fake_score, torch.zeros_like(fake_score))
            d_loss = d_loss + information(q, values, continuous)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        with amp():
            score, q = d(fake)
            g_loss = bce(score, torch.ones_like(score)) + information(q, values, continuous)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


class FlopCount(TorchDispatchMode):
    """torch.utils.flop_counter's per-op formulas (matmuls and convolutions, forward and backward)
    summed over every op run, without FlopCounterMode's module hooks, which refuse the double
    backward of the gradient penalty."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            shape = lambda x: x.shape if isinstance(x, torch.Tensor) else x  # noqa: E731
            self.flops += formula(*tree_map(shape, args), **tree_map(shape, kwargs), out_val=tree_map(shape, out))
        return out

    def get_total_flops(self):
        return self.flops


MODELS = {"dcgan": dcgan_step, "cdcgan": cdcgan_step, "vae": vae_step, "wgan-gp": wgan_gp_step,
          "infogan": infogan_step}


def main(model, batch, steps, warmup, threads, precision="fp32", variant="eager"):
    global BF16, VARIANT
    if precision not in ("fp32", "bf16"):
        sys.exit(f"precision `{precision}`: expected fp32 or bf16")
    if variant not in VARIANTS:
        sys.exit(f"variant `{variant}`: expected one of {', '.join(VARIANTS)}")
    BF16, VARIANT = precision == "bf16", variant
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = MODELS[model](batch)
    try:
        step()  # torch.compile compiles here
    except RuntimeError as e:
        if variant != "compile":
            raise
        print(json.dumps({"unavailable": f"torch.compile: {str(e).strip().splitlines()[0][:160]}"}))
        return
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    flops = None
    if variant == "eager":  # the same model's work whatever the variant: counted once, on eager
        counter = FlopCount()
        with counter:
            step()
        flops = counter.get_total_flops()
    print(json.dumps({
        "ms_per_step": 1000 * seconds / steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "flops_per_step": flops,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": precision,
        "variant": variant,
    }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:8])
