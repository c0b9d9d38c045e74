"""PyTorch's answers for @wrn/native's inference kernels (test/inference.test.ts): reads the cases as JSON on stdin,
writes one answer per case as JSON on stdout. float64 throughout: the oracle is the exact value."""
import json
import sys

import torch
import torch.nn.functional as F


def t(values, shape):
    return torch.tensor([float("nan") if v is None else v for v in values], dtype=torch.float64).reshape(shape)


def param(case, key, channels):
    values = case[key]
    return None if values is None else t(values, [-1]).expand(channels)


def answer(case):
    kind = case["kind"]
    if kind == "batchNorm":
        c = case["channels"]
        x = t(case["x"], [-1, c])
        # F.batch_norm in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias, channels on dim 1.
        out = F.batch_norm(
            x,
            param(case, "mean", c).contiguous(),
            param(case, "variance", c).contiguous(),
            weight=None if case["scale"] is None else param(case, "scale", c).contiguous(),
            bias=None if case["offset"] is None else param(case, "offset", c).contiguous(),
            training=False,
            eps=case["epsilon"],
        )
        if case.get("relu"):
            out = torch.relu(out)
        return out.flatten().tolist()
    if kind == "relu":
        out = torch.relu(t(case["x"], [-1]))
        return [None if v != v else v for v in out.tolist()]
    if kind == "add":
        return (t(case["a"], [-1]) + t(case["b"], [-1])).tolist()
    if kind == "addRelu":
        # A residual block's out = relu(branch + shortcut), NaN kept.
        out = torch.relu(t(case["a"], [-1]) + t(case["b"], [-1]))
        return [None if v != v else v for v in out.tolist()]
    if kind == "zeroPadShortcut":
        n, h, w, c = case["shape"]
        s, co = case["strides"], case["outChannels"]
        x = t(case["x"], [n, h, w, c])
        # fb.resnet.torch's option A: x[:, ::s, ::s, :] with zero channels appended after the input's.
        sub = x[:, ::s, ::s, :]
        return F.pad(sub, (0, co - c)).flatten().tolist()
    raise ValueError(f"unknown case kind {kind!r}")


json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)
