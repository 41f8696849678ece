"""The conditional DCGAN of the DCGAN lesson (RDFIA practical 3-d, section 2.2) in PyTorch,
layer by layer as the lesson lists them, with parameter names that sort like gan_lab's.

Prints the numbers tests/exercises_conditional.rs compares against: each parameter set to
0.05·sin(0.37·i + 1.3·k) (k-th parameter by sorted name, BatchNorm weights plus 1), fixed inputs,
training-mode BatchNorm.

Usage: python conditional_reference.py
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConditionalGenerator(nn.Module):
    def __init__(self, nz=100, classes=10, ngf=64, nc=1):
        super().__init__()
        self.z_convt = nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False)
        self.z_bn = nn.BatchNorm2d(ngf * 4)
        self.y_convt = nn.ConvTranspose2d(classes, ngf * 4, 4, 1, 0, bias=False)
        self.y_bn = nn.BatchNorm2d(ngf * 4)
        self.convt1 = nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ngf * 4)
        self.convt2 = nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ngf * 2)
        self.convt3 = nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1)
        self.classes = classes

    def forward(self, z, y):
        y = F.one_hot(y, self.classes).float().view(len(y), -1, 1, 1)
        hz = torch.relu(self.z_bn(self.z_convt(z.view(len(z), -1, 1, 1))))
        hy = torch.relu(self.y_bn(self.y_convt(y)))
        x = torch.cat([hz, hy], 1)
        x = torch.relu(self.bn1(self.convt1(x)))
        x = torch.relu(self.bn2(self.convt2(x)))
        return torch.tanh(self.convt3(x))


class ConditionalDiscriminator(nn.Module):
    def __init__(self, classes=10, ndf=64, nc=1):
        super().__init__()
        self.x_conv = nn.Conv2d(nc, ndf, 4, 2, 1)
        self.y_conv = nn.Conv2d(classes, ndf, 4, 2, 1)
        self.conv1 = nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ndf * 4)
        self.conv2 = nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ndf * 8)
        self.conv3 = nn.Conv2d(ndf * 8, 1, 4, 1, 0)
        self.classes = classes

    def forward(self, x, y):
        y = F.one_hot(y, self.classes).float().view(len(y), -1, 1, 1).expand(-1, -1, x.size(2), x.size(3))
        h = torch.cat([F.leaky_relu(self.x_conv(x), 0.2), F.leaky_relu(self.y_conv(y), 0.2)], 1)
        h = F.leaky_relu(self.bn1(self.conv1(h)), 0.2)
        h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)
        return self.conv3(h).view(-1)  # logits; the lesson's sigmoid lives in the loss


def fill(model):
    with torch.no_grad():
        for k, (name, p) in enumerate(sorted(model.named_parameters())):
            i = torch.arange(p.numel(), dtype=torch.float64)
            v = torch.sin(0.37 * i + 1.3 * k) * 0.05
            if "bn" in name and name.endswith("weight"):
                v += 1.0
            p.copy_(v.float().view(p.shape))


def main():
    z = torch.cos(torch.arange(400, dtype=torch.float32) * 0.11).view(4, 100)
    x = torch.sin(torch.arange(4096, dtype=torch.float32) * 0.07).view(4, 1, 32, 32)
    y = torch.tensor([3, 0, 7, 9])
    g, d = ConditionalGenerator(), ConditionalDiscriminator()
    fill(g)
    fill(d)
    for name, m in (("G", g), ("D", d)):
        print(name, {n: p.numel() for n, p in sorted(m.named_parameters())})
    out = g(z, y)
    print("G sum", f"{out.double().sum().item():.8g}", "abs sum", f"{out.double().abs().sum().item():.8g}",
          "[0,0,5,7]", f"{out[0, 0, 5, 7].item():.8g}", "[3,0,20,11]", f"{out[3, 0, 20, 11].item():.8g}")
    print("D logits", [f"{v:.8g}" for v in d(x, y).tolist()])
    print("D logits, labels rolled", [f"{v:.8g}" for v in d(x, y.roll(1)).tolist()])
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0], [-0.5, 0.2, 4.0]])
    labels = torch.tensor([0, 1, 2, 0])
    print("class loss", f"{F.cross_entropy(logits, labels).item():.8g}")


if __name__ == "__main__":
    main()
