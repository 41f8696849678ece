"""InfoGAN's information loss (Chen et al., 2016) in PyTorch, for tests/exercises_infogan.rs.

Q's outputs and the codes are fixed patterns; the categorical part is PyTorch's cross-entropy on
logits, the continuous part its Gaussian negative log-likelihood with the constant (full=True),
summed over the codes and averaged over the batch.

Usage: python infogan_reference.py
"""

import math

import torch
import torch.nn.functional as F


def inputs(learn_std):
    width = 10 + 2 + (2 if learn_std else 0)
    q = (torch.arange(4 * width, dtype=torch.float32) * 0.37).sin().view(4, width) * 3.0
    values = torch.tensor([3, 0, 7, 9])
    continuous = torch.tensor([[0.5, -0.25], [-0.9, 0.1], [0.0, 0.75], [0.3, -0.6]])
    c = torch.cat([F.one_hot(values, 10).float(), continuous], 1)
    return q, c, values, continuous


def information_loss(learn_std):
    q, c, values, continuous = inputs(learn_std)
    categorical = F.cross_entropy(q[:, :10], values)
    mean = q[:, 10:12]
    var = (2 * q[:, 12:14]).exp() if learn_std else torch.ones_like(mean)
    nll = F.gaussian_nll_loss(mean, continuous, var, full=True, reduction="none").sum(1).mean()
    return categorical.item(), nll.item()


if __name__ == "__main__":
    for learn_std in (False, True):
        cat, cont = information_loss(learn_std)
        print(f"learn_std={learn_std}: categorical {cat:.6f} continuous {cont:.6f}")
    print(f"ln 10 = {math.log(10):.6f}")
