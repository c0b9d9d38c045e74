"""PyTorch's answers for @wrn/native's (grouped) convolutions (test/grouped-conv.test.ts): reads the cases as JSON on
stdin, writes one answer per case as JSON on stdout: y = conv2d(x, w, stride, groups) and, by autograd, the gradients
of sum(y * dy) with respect to x and w. float64 throughout: the oracle is the exact value.

Tensors come and go in TF's layouts (x, y NHWC; the filter [kh, kw, ci, co]); padding is TF's explicit
(top, left) before, and whatever the output size implies after (negative: the last rows or columns go unread)."""
import json
import sys

import torch
import torch.nn.functional as F


def answer(case):
    n, h, w, groups = case["n"], case["h"], case["w"], case["groups"]
    ci, co, kh, kw = case["ci"], case["co"], case["kh"], case["kw"]
    sh, sw, ho, wo = case["sh"], case["sw"], case["ho"], case["wo"]
    top, left = case["padTop"], case["padLeft"]
    x = torch.tensor(case["x"], dtype=torch.float64).reshape(n, h, w, groups * ci).permute(0, 3, 1, 2).requires_grad_()
    weight = torch.tensor(case["filter"], dtype=torch.float64).reshape(kh, kw, ci, co).permute(3, 2, 0, 1).requires_grad_()
    dy = torch.tensor(case["dy"], dtype=torch.float64).reshape(n, ho, wo, co).permute(0, 3, 1, 2)
    bottom = (ho - 1) * sh + kh - h - top
    right = (wo - 1) * sw + kw - w - left
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=(sh, sw), groups=groups)
    assert tuple(y.shape) == (n, co, ho, wo), y.shape
    (y * dy).sum().backward()
    return {
        "y": y.permute(0, 2, 3, 1).flatten().tolist(),
        "dx": x.grad.permute(0, 2, 3, 1).flatten().tolist(),
        "dw": weight.grad.permute(2, 3, 1, 0).flatten().tolist(),
    }


json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)
