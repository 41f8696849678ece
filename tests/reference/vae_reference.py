"""The VAE's loss terms in PyTorch, for tests/exercises_vae.rs.

Fixed patterns for μ, log σ², a batch of images and its reconstructions; the KL term from
torch.distributions (closed form of KL(N(μ, σ²) ‖ N(0, 1))) averaged over dimensions and batch,
the reconstruction terms from F.mse_loss and F.binary_cross_entropy (pixels mapped to [0, 1]).

With a WORKDIR, also the lesson's VAE (gan_lab/src/models/vae.rs) for tests/vae.rs: loads the
weights and inputs gan_lab saved (images x, noise eps), runs the encoder, the reparameterised draw,
the decoder, the loss (MSE + 1e-2 KL) and one torch.optim.Adam step (2e-4, betas (0.5, 0.999)),
and saves the results for gan_lab to compare.

Usage: python vae_reference.py [WORKDIR]   (reads WORKDIR/{vae,inputs}.safetensors, writes
WORKDIR/reference.safetensors)
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.distributions import Normal, kl_divergence


class Vae(nn.Module):
    def __init__(self, nc=1, nf=32, latent=32, side=2):
        super().__init__()
        widths = [nf, 2 * nf, 4 * nf, 8 * nf]
        self.side, self.top = side, widths[3]
        chans = [nc] + widths
        for i in range(4):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1, bias=False))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(chans[i + 1]))
        bottom = widths[3] * side * side
        self.mean = nn.Linear(bottom, latent)
        self.log_variance = nn.Linear(bottom, latent)
        self.dense = nn.Linear(latent, bottom, bias=False)
        self.bn0 = nn.BatchNorm1d(bottom)
        for i, (a, b) in enumerate([(widths[3], widths[2]), (widths[2], widths[1]), (widths[1], widths[0])]):
            setattr(self, f"convt{i + 1}", nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False))
            setattr(self, f"bnt{i + 1}", nn.BatchNorm2d(b))
        self.convt4 = nn.ConvTranspose2d(widths[0], nc, 4, 2, 1, bias=True)

    def encode(self, x):
        for i in range(4):
            x = F.leaky_relu(getattr(self, f"bn{i + 1}")(getattr(self, f"conv{i + 1}")(x)), 0.01)
        x = x.flatten(1)
        return self.mean(x), self.log_variance(x)

    def decode(self, z):
        h = F.leaky_relu(self.bn0(self.dense(z)), 0.01).view(-1, self.top, self.side, self.side)
        for i in range(3):
            h = F.leaky_relu(getattr(self, f"bnt{i + 1}")(getattr(self, f"convt{i + 1}")(h)), 0.01)
        return torch.tanh(self.convt4(h))


def parity(workdir):
    torch.use_deterministic_algorithms(True)
    vae = Vae()
    missing, unexpected = vae.load_state_dict(load_file(f"{workdir}/vae.safetensors"), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    inputs = load_file(f"{workdir}/inputs.safetensors")
    x, eps = inputs["x"], inputs["eps"]
    opt = torch.optim.Adam(vae.parameters(), lr=2e-4, betas=(0.5, 0.999))
    mu, log_variance = vae.encode(x)
    decoded = vae.decode(mu + (0.5 * log_variance).exp() * eps)
    q = Normal(mu, (0.5 * log_variance).exp())
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).mean()
    loss = F.mse_loss(decoded, x) + 1e-2 * kl
    opt.zero_grad()
    loss.backward()
    opt.step()
    out = {"mu": mu.detach(), "log_variance": log_variance.detach(), "decoded": decoded.detach(), "loss": loss.detach().view(1)}
    out.update({f"after.{k}": v.detach().clone() for k, v in vae.state_dict().items() if v.is_floating_point()})
    out.update({f"grad.{k}": p.grad.detach().clone() for k, p in vae.named_parameters()})
    save_file(out, f"{workdir}/reference.safetensors")


def inputs():
    mu = (torch.arange(24, dtype=torch.float32) * 0.61).sin().view(4, 6) * 1.5
    log_variance = (torch.arange(24, dtype=torch.float32) * 0.37).cos().view(4, 6) * 2.0 - 0.5
    images = (torch.arange(4 * 16, dtype=torch.float32) * 0.29).sin().view(4, 1, 4, 4)
    decoded = (torch.arange(4 * 16, dtype=torch.float32) * 0.23 + 0.4).cos().view(4, 1, 4, 4) * 0.98
    return mu, log_variance, images, decoded


def terms():
    mu, log_variance, images, decoded = inputs()
    q = Normal(mu, (0.5 * log_variance).exp())
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).mean()
    mse = F.mse_loss(decoded, images)
    bce = F.binary_cross_entropy((decoded + 1) / 2, (images + 1) / 2)
    return kl.item(), mse.item(), bce.item()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        parity(sys.argv[1])
        sys.exit(0)
    kl, mse, bce = terms()
    print(f"kl {kl:.7f} mse {mse:.7f} bce {bce:.7f}")
