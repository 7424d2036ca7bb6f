#!/usr/bin/env python3
"""Record PyTorch outputs and gradients for nn's cross-check tests.

Run from the repository root with Debian's python3-torch:
    /usr/bin/python3 nn/testdata/gen_torch.py > nn/testdata/torch_golden.json

Each case lists named inputs (shape + values), the upstream gradient `seed`
of the output (the test backpropagates sum(out * seed)), the output and the
gradients of the inputs. Values are float32 printed with 9 significant digits.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)


def r(*shape, positive=False):
    t = torch.randn(*shape, dtype=torch.float32)
    if positive:
        t = t.abs() + 0.5
    return t


def enc(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.reshape(-1).tolist()]}


def case(name, inputs, fn, params=None, extra=None):
    """inputs: dict name -> tensor (grads recorded); fn(**leaves) -> output."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**leaves)
    seed = r(*out.shape) if out.dim() > 0 else torch.tensor(1.0)
    (out * seed).sum().backward()
    c = {
        "name": name,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "seed": enc(seed.reshape(out.shape) if out.dim() > 0 else seed.reshape(1)),
        "output": enc(out.reshape(-1) if out.dim() == 0 else out),
        "grads": {k: enc(v.grad) for k, v in leaves.items()},
        "params": params or {},
    }
    if extra:
        c["extra"] = {k: enc(v) for k, v in extra().items()}
    return c


cases = []

cases.append(case("conv2d_s2p1", {"x": r(2, 3, 7, 6), "w": r(4, 3, 3, 3), "b": r(4)},
                  lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), {"stride": 2, "pad": 1}))
cases.append(case("conv2d_s1p1", {"x": r(2, 2, 5, 5), "w": r(3, 2, 3, 3), "b": r(3)},
                  lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1), {"stride": 1, "pad": 1}))
cases.append(case("conv_transpose2d_s2p1", {"x": r(2, 3, 3, 4), "w": r(3, 2, 4, 4), "b": r(2)},
                  lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1), {"stride": 2, "pad": 1}))

for train in (True, False):
    rm, rv = r(3) * 0.1, r(3, positive=True)
    state = {}

    def bn(x, g, b, rm=rm, rv=rv, train=train):
        m, v = rm.clone(), rv.clone()
        y = F.batch_norm(x, m, v, g, b, training=train, momentum=0.1, eps=1e-5)
        state["m"], state["v"] = m, v
        return y

    cases.append(case("batchnorm2d_" + ("train" if train else "eval"),
                      {"x": r(4, 3, 3, 2) * 2 + 1, "g": r(3), "b": r(3)}, bn,
                      {"train": train, "running_mean": rm.tolist(), "running_var": rv.tolist()},
                      lambda: {"running_mean": state["m"], "running_var": state["v"]}))

cases.append(case("batchnorm1d_train", {"x": r(6, 4), "g": r(4), "b": r(4)},
                  lambda x, g, b: F.batch_norm(x, torch.zeros(4), torch.ones(4), g, b, training=True),
                  {"train": True, "running_mean": [0.0] * 4, "running_var": [1.0] * 4}))
cases.append(case("layernorm", {"x": r(2, 3, 5) * 3, "g": r(5), "b": r(5)},
                  lambda x, g, b: F.layer_norm(x, (5,), g, b, eps=1e-5)))
cases.append(case("gelu", {"x": r(3, 7) * 2}, lambda x: F.gelu(x)))
cases.append(case("maxpool_k3s2p1", {"x": r(2, 2, 6, 5)}, lambda x: F.max_pool2d(x, 3, 2, 1)))
cases.append(case("upsample2x", {"x": r(1, 2, 2, 3)}, lambda x: F.interpolate(x, scale_factor=2, mode="nearest")))

# Multi-head attention (batch_first) with an additive mask.
D, H = 8, 2
attn_mask = torch.zeros(3, 4)
attn_mask[0, 3] = float("-inf")
attn_mask[2, 1] = float("-inf")


def mha(q, k, v, in_w, in_b, out_w, out_b):
    out, _ = F.multi_head_attention_forward(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), D, H, in_w, in_b,
        None, None, False, 0.0, out_w, out_b, training=False, need_weights=False, attn_mask=attn_mask)
    return out.transpose(0, 1)


c = case("multihead_attention", {"q": r(2, 3, D), "k": r(2, 4, D), "v": r(2, 4, D),
                                  "in_w": r(3 * D, D) * 0.3, "in_b": r(3 * D) * 0.1,
                                  "out_w": r(D, D) * 0.3, "out_b": r(D) * 0.1}, mha,
         {"heads": H})
c["mask"] = enc(attn_mask.nan_to_num(neginf=-1e30))
cases.append(c)

# Losses.
tgt = torch.tensor([0, 2, 1, 2, 1])
cw = torch.tensor([0.5, 1.0, 2.0])
cases.append(case("cross_entropy_weighted", {"logits": r(5, 3)},
                  lambda logits: F.cross_entropy(logits, tgt, weight=cw),
                  {"targets": tgt.tolist(), "weights": cw.tolist()}))
cases.append(case("cross_entropy", {"logits": r(5, 3)}, lambda logits: F.cross_entropy(logits, tgt),
                  {"targets": tgt.tolist()}))
cases.append(case("mse", {"pred": r(3, 4), "target": r(3, 4)}, lambda pred, target: F.mse_loss(pred, target)))
mask = (torch.rand(3, 4) > 0.4).float()
cases.append(case("masked_mse", {"pred": r(3, 4), "target": r(3, 4)},
                  lambda pred, target: ((pred - target) ** 2 * mask).sum() / mask.sum(),
                  {"mask": mask.reshape(-1).tolist()}))


def clip(a, b, temperature=0.1):
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.t() / temperature
    t = torch.arange(a.shape[0])
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.t(), t))


cases.append(case("infonce", {"a": r(5, 4), "b": r(5, 4)}, clip, {"temperature": 0.1}))

counts = torch.poisson(torch.full((3, 4), 3.0))


def nb_nll(mu, theta, eps=1e-8):
    # scVI's log_nb_positive, summed over genes, averaged over cells.
    log_theta_mu_eps = torch.log(theta + mu + eps)
    ll = (theta * (torch.log(theta + eps) - log_theta_mu_eps)
          + counts * (torch.log(mu + eps) - log_theta_mu_eps)
          + torch.lgamma(counts + theta) - torch.lgamma(theta) - torch.lgamma(counts + 1))
    return -ll.sum(-1).mean()


cases.append(case("negbinomial_nll", {"mu": r(3, 4, positive=True) * 2, "theta": r(4, positive=True)},
                  nb_nll, {"counts": counts.reshape(-1).tolist()}))


def gauss_kl(mu, logvar):
    return (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(-1)).mean()


cases.append(case("gaussian_kl", {"mu": r(3, 4), "logvar": r(3, 4) * 0.5}, gauss_kl))

# AdamW: three steps on a fixed quadratic, weights after each step.
w0 = r(6)
w = w0.clone().requires_grad_(True)
opt = torch.optim.AdamW([w], lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
traj = []
target = r(6)
for _ in range(3):
    opt.zero_grad()
    ((w - target) ** 2).sum().backward()
    opt.step()
    traj.append(w.detach().clone())
cases.append({"name": "adamw", "inputs": {"w": enc(w0), "target": enc(target)},
              "output": enc(torch.stack(traj)), "params": {"lr": 0.05, "weight_decay": 0.1},
              "grads": {}, "seed": enc(torch.ones(1))})

# SGD with momentum and weight decay: three steps, then clip_grad_norm_.
w0 = r(6)
w = w0.clone().requires_grad_(True)
opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
traj = []
for _ in range(3):
    opt.zero_grad()
    ((w - target) ** 2).sum().backward()
    opt.step()
    traj.append(w.detach().clone())
cases.append({"name": "sgd", "inputs": {"w": enc(w0), "target": enc(target)},
              "output": enc(torch.stack(traj)), "params": {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
              "grads": {}, "seed": enc(torch.ones(1))})
g1, g2 = r(3, 2) * 3, r(4) * 3
p1, p2 = torch.zeros(3, 2, requires_grad=True), torch.zeros(4, requires_grad=True)
p1.grad, p2.grad = g1.clone(), g2.clone()
norm = torch.nn.utils.clip_grad_norm_([p1, p2], 1.5)
cases.append({"name": "clip_grad_norm", "inputs": {"g1": enc(g1), "g2": enc(g2)},
              "output": enc(torch.cat([p1.grad.reshape(-1), p2.grad.reshape(-1)])),
              "params": {"max_norm": 1.5, "norm": float(norm)}, "grads": {}, "seed": enc(torch.ones(1))})

# A map small enough for the tap-by-tap convolution (nn/convshift.go); added
# last so that the cases above keep their random values.
cases.append(case("conv2d_small_map", {"x": r(3, 4, 2, 4), "w": r(5, 4, 3, 3), "b": r(5)},
                  lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1), {"stride": 1, "pad": 1}))

json.dump({"torch": torch.__version__, "cases": cases}, sys.stdout, separators=(",", ":"))
sys.stdout.write("\n")
