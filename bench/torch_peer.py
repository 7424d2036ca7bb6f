#!/usr/bin/env python3
"""PyTorch peer of `spotfuse bench`: the same models, batch, image size and
thread count, timed the same way. Prints one JSON object.

    torch_peer.py --model conv4 --batch 64 --size 64 --steps 10 --threads 2
    torch_peer.py --mem-probe ...   # RSS before and peak RSS during two training steps
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv4(nn.Module):
    def __init__(self, classes):
        super().__init__()
        chans = [3, 32, 64, 128, 256]
        self.blocks = nn.ModuleList()
        for i in range(4):
            blk = nn.Module()
            blk.conv = nn.Conv2d(chans[i], chans[i + 1], 3, 1 if i == 0 else 2, 1, bias=False)
            blk.bn = nn.BatchNorm2d(chans[i + 1])
            self.blocks.append(blk)
        self.fc = nn.Linear(256, classes)

    def forward(self, x):
        for b in self.blocks:
            x = F.relu(b.bn(b.conv(x)))
        return self.fc(x.mean((2, 3)))


def make(name, classes):
    if name == "conv4":
        return Conv4(classes)
    import torchvision
    return torchvision.models.resnet18(num_classes=classes)


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no " + field)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="conv4")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mem-probe", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = make(a.model, a.classes)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1e-2)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()

    m.train()
    if a.mem_probe:
        # Reset the peak-RSS mark (VmHWM) so the import of torch does not count.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS:")
        for _ in range(2):
            step()
        print(json.dumps({"before": before, "after": status("VmHWM:")}))
        return
    for _ in range(a.warmup):
        step()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    train = time.perf_counter() - t
    m.eval()
    with torch.inference_mode():
        for _ in range(a.warmup):
            m(x)
        t = time.perf_counter()
        n = 2 * a.steps
        for _ in range(n):
            m(x)
        infer = time.perf_counter() - t
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "train_img_s": a.batch * a.steps / train, "infer_img_s": a.batch * n / infer,
    }))


if __name__ == "__main__":
    main()
