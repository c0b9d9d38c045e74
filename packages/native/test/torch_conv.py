"""PyTorch's answers for @wrn/native's convolutions (test/gemm-isa.test.ts): reads the cases as JSON on stdin (NHWC
x, [kh, kw, ci, co] filter, NHWC dy, TF's geometry), writes the forward output and both gradients of each as JSON on
stdout, in the same layouts. float64 throughout: the oracle is the exact value."""
import json
import sys

import torch
import torch.nn.functional as F


def answer(case):
    g = case["geometry"]
    x = torch.tensor(case["x"], dtype=torch.float64).reshape(g["n"], g["h"], g["w"], g["ci"]).permute(0, 3, 1, 2)
    x.requires_grad_()
    f = torch.tensor(case["filter"], dtype=torch.float64).reshape(g["kh"], g["kw"], g["ci"], g["co"]).permute(3, 2, 0, 1)
    f.requires_grad_()
    # TF's padding: padTop / padLeft before, the rest after; negative after-padding (a 'valid' stride that leaves
    # the last rows unread) crops them, which F.pad does with negative amounts.
    bottom = (g["ho"] - 1) * g["sh"] + g["kh"] - g["h"] - g["padTop"]
    right = (g["wo"] - 1) * g["sw"] + g["kw"] - g["w"] - g["padLeft"]
    padded = F.pad(x, (g["padLeft"], right, g["padTop"], bottom))
    y = F.conv2d(padded, f, stride=(g["sh"], g["sw"]))
    dy = torch.tensor(case["dy"], dtype=torch.float64).reshape(g["n"], g["ho"], g["wo"], g["co"]).permute(0, 3, 1, 2)
    y.backward(dy)
    return {
        "y": y.detach().permute(0, 2, 3, 1).flatten().tolist(),
        "dx": x.grad.permute(0, 2, 3, 1).flatten().tolist(),
        "dw": f.grad.permute(2, 3, 1, 0).flatten().tolist(),
    }


json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)
