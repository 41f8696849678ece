"""Independent reference for gan_lab's metrics, in numpy/scipy as the usual implementations
write them: the Inception score of Salimans et al.'s code (splits, np.std over splits), the Mode
score of IFT6135 assignment 4, section 4.2, and pytorch-fid's Fréchet distance (scipy.linalg.sqrtm).

Usage: python metrics_reference.py WORKDIR   (reads WORKDIR/inputs.safetensors, writes WORKDIR/reference.json)
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file
from scipy import linalg


def inception_score(p, splits):
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part) - np.log(py))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def mode_score(p, real_marginal, splits):
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0)
        kl = (part * (np.log(part) - np.log(py[None, :]))).sum(axis=1).mean()
        kl_marginal = (py * (np.log(py) - np.log(real_marginal))).sum()
        scores.append(np.exp(kl - kl_marginal))
    return float(np.mean(scores)), float(np.std(scores))


def fid(f1, f2):
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def main(workdir):
    t = {k: v.astype(np.float64) for k, v in load_file(f"{workdir}/inputs.safetensors").items()}
    p = np.clip(t["probs"], 1e-12, None)
    out = {
        "inception": inception_score(p, 10),
        "mode": mode_score(p, np.clip(t["real_marginal"], 1e-12, None), 10),
        "fid": fid(t["features1"], t["features2"]),
    }
    json.dump(out, open(f"{workdir}/reference.json", "w"))


if __name__ == "__main__":
    main(sys.argv[1])
