"""The DCGAN of the lesson (RDFIA practical 3-d, section 1.2) in PyTorch, as the course's
notebooks write it: Sigmoid at the end of D, nn.BCELoss, torch.optim.Adam.

Used by tests/parity.rs: loads the weights and inputs gan_lab saved, runs the forward passes and
one training step (D then G, as pytorch/examples' dcgan does), and saves the results for
gan_lab to compare.

Usage: python dcgan_reference.py WORKDIR   (reads WORKDIR/{generator,discriminator,inputs}.safetensors,
writes WORKDIR/reference.safetensors)
"""
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file


STEPS = 3


class Generator(nn.Module):
    def __init__(self, nz=100, ngf=32, nc=1):
        super().__init__()
        self.convt1 = nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(ngf * 4)
        self.convt2 = nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ngf * 2)
        self.convt3 = nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(ngf)
        self.convt4 = nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False)

    def forward(self, z):
        x = z.view(z.size(0), -1, 1, 1)
        x = torch.relu(self.bn1(self.convt1(x)))  # (ngf*4) x 4 x 4
        x = torch.relu(self.bn2(self.convt2(x)))  # (ngf*2) x 8 x 8
        x = torch.relu(self.bn3(self.convt3(x)))  # ngf x 16 x 16
        return torch.tanh(self.convt4(x))  # nc x 32 x 32


class Discriminator(nn.Module):
    def __init__(self, ndf=32, nc=1):
        super().__init__()
        self.conv1 = nn.Conv2d(nc, ndf, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ndf)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ndf * 2)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(ndf * 4)
        self.conv4 = nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False)

    def forward(self, x):
        x = nn.functional.leaky_relu(self.bn1(self.conv1(x)), 0.2)  # ndf x 16 x 16
        x = nn.functional.leaky_relu(self.bn2(self.conv2(x)), 0.2)  # (ndf*2) x 8 x 8
        x = nn.functional.leaky_relu(self.bn3(self.conv3(x)), 0.2)  # (ndf*4) x 4 x 4
        return torch.sigmoid(self.conv4(x)).view(-1)  # D(x) in [0, 1]


def main(workdir, precision="fp32"):
    """With precision bf16, the forward passes run under torch.autocast("cpu", bfloat16), on
    channels-last weights and batch as gan_lab lays them out; the backward passes outside."""
    torch.use_deterministic_algorithms(True)
    bf16 = {"fp32": False, "bf16": True}[precision]
    g, d = Generator(), Discriminator()
    g.load_state_dict(load_file(f"{workdir}/generator.safetensors"), strict=False)
    d.load_state_dict(load_file(f"{workdir}/discriminator.safetensors"), strict=False)
    inputs = load_file(f"{workdir}/inputs.safetensors")
    x, z = inputs["x"], inputs["z"]
    if bf16:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    g.train()
    d.train()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    out = {}

    # The outputs and weights of the first step, the losses of STEPS steps: Adam's first update
    # is lr·sign(grad) whatever its betas, so only the later losses check the moment estimates.
    for step in range(STEPS):
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        opt_d.zero_grad()
        with amp():
            fake = g(z)
            d_real = d(x)
            d_fake = d(fake.detach())
            d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        d_loss.backward()
        opt_d.step()
        # (2) Update G: maximize log(D(G(z)))
        opt_g.zero_grad()
        with amp():
            d_fake_g = d(fake)
            g_loss = bce(d_fake_g, torch.ones_like(d_fake_g))
        g_loss.backward()
        opt_g.step()
        if step == 0:
            out["fake"] = fake.detach().float().contiguous()
            out["d_real"] = d_real.detach().float().clone()
            out["d_fake"] = d_fake.detach().float().clone()
            # Weights after one step.
            for prefix, model in (("generator.", g), ("discriminator.", d)):
                for name, t in model.state_dict().items():
                    if not name.endswith("num_batches_tracked"):
                        out[prefix + name] = t.detach().clone()
        out[f"d_loss.{step}"] = d_loss.detach().reshape(1)
        out[f"g_loss.{step}"] = g_loss.detach().reshape(1)
    save_file({k: v.contiguous() for k, v in out.items()}, f"{workdir}/reference.safetensors")


if __name__ == "__main__":
    main(*sys.argv[1:3])
