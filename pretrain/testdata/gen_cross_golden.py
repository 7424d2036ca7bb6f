"""Golden values for pretrain's cross-modal CLIP loss and section-mixing entropy.

CLIP: a[i, j] = sin(0.7 i + 1.3 j) + 0.1 j and b[i, j] = cos(0.4 i - 0.9 j) for 5 x 4
matrices; logit scale 1/0.1. Loss = (CE(s·â·b̂ᵀ, arange) + CE((s·â·b̂ᵀ)ᵀ, arange)) / 2 as in
CLIP, with its gradient with respect to a and b (PyTorch, float64).

Entropy: x[i, j] = sin(0.37 i + 1.1 j) + 0.05 i (mod 3) for 60 points in 3 dimensions,
section of point i = (i * 7) mod 3; k = 5 nearest neighbours (scikit-learn,
self excluded); per-point Shannon entropy of the neighbours' sections divided by log 3.

Writes cross_golden.json. Run: /usr/bin/python3 pretrain/testdata/gen_cross_golden.py
(Debian python3-torch, python3-sklearn).
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors

n, d, scale = 5, 4, 1 / 0.1
a = torch.tensor([[math.sin(0.7 * i + 1.3 * j) + 0.1 * j for j in range(d)] for i in range(n)],
                 dtype=torch.float64, requires_grad=True)
b = torch.tensor([[math.cos(0.4 * i - 0.9 * j) for j in range(d)] for i in range(n)],
                 dtype=torch.float64, requires_grad=True)
logits = scale * F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
target = torch.arange(n)
loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
loss.backward()

m, k, nb = 60, 5, 3
x = np.array([[math.sin(0.37 * i + 1.1 * j) + 0.05 * (i % 3) for j in range(3)] for i in range(m)])
sec = np.array([(i * 7) % nb for i in range(m)])
_, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
ent = []
for i in range(m):
    nbrs = [j for j in idx[i] if j != i][:k]
    p = np.bincount(sec[nbrs], minlength=nb) / k
    p = p[p > 0]
    ent.append(float(-(p * np.log(p)).sum() / math.log(nb)))

out = {
    "clip": {"n": n, "d": d, "scale": scale, "a": a.detach().flatten().tolist(), "b": b.detach().flatten().tolist(),
             "loss": loss.item(), "grad_a": a.grad.flatten().tolist(), "grad_b": b.grad.flatten().tolist()},
    "entropy": {"n": m, "d": 3, "k": k, "sections": nb, "x": x.flatten().tolist(), "section": sec.tolist(),
                "per_spot": ent, "mean": float(np.mean(ent))},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cross_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
print("loss", loss.item(), "mean entropy", np.mean(ent))
