"""One GAN training step in PyTorch, written as PyTorch's DCGAN example writes it, for the
`dcgan.train_step` checks in tests/exercises_dcgan.rs.

Tiny networks with fixed weights (G: Linear(3, 4) + tanh, D: Linear(4, 1)), fixed batches, Adam
(lr 0.05, betas (0.5, 0.999)) and a pair of made-up least-squares losses (not any lesson's), two
steps. Prints D's and G's losses, the parameters after each step and the latent batch's gradient
after the first step (the G update's alone: D's update works on detached fakes).

Usage: python train_step_reference.py
"""

import torch
import torch.nn as nn


def pattern(fn, n, scale, shift=0.0):
    return fn(torch.arange(n, dtype=torch.float32) * scale + shift)


def d_loss_of(on_real, on_fake):
    return ((on_real - 0.9) ** 2).mean() + 0.5 * ((on_fake + 0.3) ** 2).mean()


def g_loss_of(on_fake):
    return ((on_fake - 0.9) ** 2).mean()


def show(name, t):
    print(f"{name} = [{', '.join(f'{v:.7f}' for v in t.detach().reshape(-1).tolist())}]")


g = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
d = nn.Sequential(nn.Linear(4, 1))
with torch.no_grad():
    g[0].weight.copy_(pattern(torch.sin, 12, 0.7).view(4, 3) * 0.5)
    g[0].bias.copy_(pattern(torch.cos, 4, 0.9) * 0.1)
    d[0].weight.copy_(pattern(torch.cos, 4, 1.3).view(1, 4) * 0.6)
    d[0].bias.fill_(0.05)
opt_g = torch.optim.Adam(g.parameters(), lr=0.05, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(d.parameters(), lr=0.05, betas=(0.5, 0.999))

for k in range(2):
    real = pattern(torch.sin, 20, 0.37, float(k)).view(5, 4)
    z = pattern(torch.cos, 15, 0.51, float(k)).view(5, 3).requires_grad_(True)

    # (1) Update D network
    opt_d.zero_grad()
    fake = g(z)
    on_real = d(real)
    on_fake = d(fake.detach())
    d_loss = d_loss_of(on_real, on_fake)
    d_loss.backward()
    opt_d.step()

    # (2) Update G network
    opt_g.zero_grad()
    g_loss = g_loss_of(d(fake))
    g_loss.backward()
    opt_g.step()

    print(f"step {k + 1}: d_loss = {d_loss.item():.7f}, g_loss = {g_loss.item():.7f}")
    show("  on_real", on_real)
    show("  on_fake", on_fake)
    show("  d.weight", d[0].weight)
    show("  d.bias", d[0].bias)
    show("  g.weight", g[0].weight)
    show("  g.bias", g[0].bias)
    show("  z.grad", z.grad)
