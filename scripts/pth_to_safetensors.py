#!/usr/bin/env python3
"""Convert a PyTorch CIFAR checkpoint into a safetensors state dict for `[model] weights`.

    python3 scripts/pth_to_safetensors.py ckpt.pth weights.safetensors

Accepts what CIFAR training scripts save: a bare state dict, a dict holding it under `net`,
`state_dict` or `model` (or the key given with --key), or a whole pickled `nn.Module` (then the
module's class must be importable). The `module.` prefix that DataParallel adds is stripped;
the torchvision-style names of the DFPC authors' and chenyaofo's ResNets become prunelab's
(`downsample.` → `shortcut.`, a leading `fc.` → `linear.`; no prunelab model uses the former);
floating-point tensors are stored as float32. prunelab ignores `num_batches_tracked` and
reports any other name or shape that does not fit the model it builds.

Needs PyTorch and safetensors: pip install torch safetensors
"""
import argparse
import os
import sys


def find_state_dict(obj, key, torch):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if not isinstance(obj, dict):
        sys.exit(f"unsupported checkpoint content: {type(obj).__name__}")
    for k in [key] if key else ["net", "state_dict", "model"]:
        if k in obj:
            inner = obj[k]
            return inner.state_dict() if isinstance(inner, torch.nn.Module) else inner
    if key:
        sys.exit(f"no key {key!r} in the checkpoint; its keys: {sorted(obj)}")
    if all(torch.is_tensor(v) for v in obj.values()):
        return obj
    sys.exit(f"cannot find the state dict; keys: {sorted(obj)} (choose one with --key)")


def prunelab_name(name):
    """The name prunelab gives the tensor `name` of a CIFAR ResNet state dict."""
    name = name[len("module."):] if name.startswith("module.") else name
    name = name.replace(".downsample.", ".shortcut.")
    return "linear." + name[len("fc."):] if name.startswith("fc.") else name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a .pth/.pt/.t7 file written by torch.save")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--key", help="the dict key that holds the state dict")
    args = parser.parse_args()
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError:
        sys.exit("this script needs PyTorch and safetensors: pip install torch safetensors")

    obj = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    state = find_state_dict(obj, args.key, torch)
    if isinstance(obj, dict):
        # What training scripts store beside the weights (pytorch-cifar: acc, epoch).
        for name, value in sorted(obj.items()):
            if isinstance(value, (int, float, str)) or (torch.is_tensor(value) and value.numel() == 1):
                print(f"the checkpoint records {name} = {value.item() if torch.is_tensor(value) else value}")
    tensors = {}
    for name, value in state.items():
        if not torch.is_tensor(value):
            continue
        name = prunelab_name(name)
        value = value.detach().float() if value.is_floating_point() else value.detach()
        tensors[name] = value.contiguous()
    save_file(tensors, args.output, metadata={"source": os.path.basename(args.checkpoint)})
    parameters = sum(v.numel() for k, v in tensors.items() if v.is_floating_point() and "running_" not in k)
    print(f"wrote {len(tensors)} tensors ({parameters:,} parameter values) to {args.output}")


if __name__ == "__main__":
    main()
