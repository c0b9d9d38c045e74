"""PyTorch's answers for @wrn/native's Winograd convolutions (test/winograd.test.ts, tools/bench/winograd-ab.ts):
reads the cases as JSON on stdin, writes one answer per case as JSON on stdout. float64 throughout: the oracle is
the exact value. A case is a 3x3 stride-1 NHWC convolution with zero padding (padTop, padLeft) before and whatever
the output size (ho, wo) leaves after; the answer is y = conv(x, f), y + bias then relu, and dx, dw = the gradients of
sum(y * dy) with respect to x and f."""
import json
import sys

import torch
import torch.nn.functional as F


def answer(case):
    n, h, w, ci, co, ho, wo = (case[k] for k in ("n", "h", "w", "ci", "co", "ho", "wo"))
    pt, pl = case["padTop"], case["padLeft"]
    x = torch.tensor(case["x"], dtype=torch.float64).reshape(n, h, w, ci).permute(0, 3, 1, 2).requires_grad_()
    f = torch.tensor(case["f"], dtype=torch.float64).reshape(3, 3, ci, co).requires_grad_()
    bias = torch.tensor(case["bias"], dtype=torch.float64)
    # Negative padding after crops: the rows past what the output reads.
    padded = F.pad(x, (pl, wo + 2 - w - pl, pt, ho + 2 - h - pt))
    y = F.conv2d(padded, f.permute(3, 2, 0, 1))
    y.backward(torch.tensor(case["dy"], dtype=torch.float64).reshape(n, ho, wo, co).permute(0, 3, 1, 2))
    nhwc = lambda t: t.detach().permute(0, 2, 3, 1).flatten().tolist()
    return {
        "y": nhwc(y),
        "yBiasRelu": nhwc(torch.relu(y + bias.reshape(1, co, 1, 1))),
        "dx": nhwc(x.grad),
        "dw": f.grad.flatten().tolist(),
    }


json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)
