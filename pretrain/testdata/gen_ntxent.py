"""Golden values for pretrain.NTXent (SimCLR's NT-Xent loss) from PyTorch.

z[i, j] = sin(0.7 * i + 1.3 * j) + 0.1 * j for a 6 x 5 matrix (rows i and i+3
are the two views of example i); temperature 0.2. Writes ntxent_golden.json
with the loss and its gradient with respect to z.
Run: /usr/bin/python3 pretrain/testdata/gen_ntxent.py (Debian python3-torch)
"""
import json
import math
import os

import torch
import torch.nn.functional as F

m, d, t = 6, 5, 0.2
z = torch.tensor([[math.sin(0.7 * i + 1.3 * j) + 0.1 * j for j in range(d)] for i in range(m)],
                 dtype=torch.float64, requires_grad=True)
zn = F.normalize(z, dim=1)
logits = zn @ zn.T / t
logits = logits.masked_fill(torch.eye(m, dtype=torch.bool), float("-inf"))
n = m // 2
targets = torch.tensor([(i + n) % m for i in range(m)])
loss = F.cross_entropy(logits, targets)
loss.backward()
out = {"rows": m, "cols": d, "temperature": t, "loss": loss.item(), "grad": z.grad.flatten().tolist()}
with open(os.path.join(os.path.dirname(__file__), "ntxent_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
print(out["loss"])
