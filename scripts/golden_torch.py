#!/usr/bin/env python3
"""Writes tests/golden/resnet8_torch.safetensors: golden values from PyTorch for tests/torch_golden.rs.

A He-style CIFAR ResNet-8 (projection shortcuts, kuangliu names; torch_models.py), 3×16×16
inputs, 10 classes, defined independently of prunelab. Recorded: the initial state dict, two training batches
with labels, the loss of each of two SGD steps (lr 0.1, momentum 0.9, weight decay 5e-4, train
mode), the state dict after them (weights, momentum-updated BN statistics), and eval-mode logits
on a third batch.

    pip install torch safetensors && python3 scripts/golden_torch.py
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from torch_models import build


def main():
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    net = build("resnet8").double()  # float64 reference; prunelab computes in float32
    with torch.no_grad():  # non-trivial BN parameters and statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
    out = {}
    for k, v in net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"initial.{k}"] = v.float().contiguous()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net.train()
    losses = []
    for step in range(2):
        x = torch.randn(8, 3, 16, 16, dtype=torch.float64)
        y = torch.randint(0, 10, (8,))
        out[f"batch{step}.x"] = x.float()
        out[f"batch{step}.y"] = y.to(torch.int64)
        # The float32 input is what prunelab sees: train on exactly that.
        loss = F.cross_entropy(net(x.float().double()), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    for k, v in net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"trained.{k}"] = v.float().contiguous()
    net.eval()
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    out["eval.x"] = x.float()
    with torch.no_grad():
        out["eval.logits"] = net(x.float().double())
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "resnet8_torch.safetensors")
    save_file(out, path, metadata={"torch": torch.__version__})
    print(f"wrote {path}: losses {losses}")


if __name__ == "__main__":
    main()
