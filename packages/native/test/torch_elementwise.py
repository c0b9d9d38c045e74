"""PyTorch's answers for @wrn/native's elementwise kernels (test/elementwise.test.ts): reads the cases as JSON on
stdin, writes one answer per case as JSON on stdout. float64 throughout: the oracle is the exact value."""
import json
import sys

import torch

torch.set_grad_enabled(True)


def t(values, shape):
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def answer(case):
    kind = case["kind"]
    if kind == "binary":
        a, b = t(case["a"], case["aShape"]), t(case["b"], case["bShape"])
        out = {"add": torch.add, "sub": torch.sub, "mul": torch.mul}[case["op"]](a, b)
        return out.flatten().tolist()
    if kind == "unary":
        x = t([float("nan") if v is None else v for v in case["x"]], [-1])  # JSON has no NaN: null stands for it
        op = case["op"]
        if op == "relu":
            out = torch.relu(x)
        elif op == "square":
            out = torch.square(x)
        else:  # tf.step: 1 where x > 0, alpha elsewhere, NaN stays NaN
            out = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, case["alpha"]))
            out = torch.where(torch.isnan(x), x, out)
        return [None if v != v else v for v in out.tolist()]
    if kind == "sum":
        x = t(case["x"], [case["outer"], case["reduced"], case["kept"]])
        return (x.sum(dim=1) * case["scale"]).flatten().tolist()
    if kind == "batchNormGrad":
        c = case["channels"]
        x = t(case["x"], [-1, c]).requires_grad_()
        mean = t(case["mean"], [c]).requires_grad_()
        variance = t(case["variance"], [c]).requires_grad_()
        offset = t(case["offset"], [c]).requires_grad_()
        scale = t(case["scale"], [c]).requires_grad_() if case["scale"] is not None else None
        y = (x - mean) / torch.sqrt(variance + case["epsilon"])
        y = y * scale + offset if scale is not None else y + offset
        y.backward(t(case["dy"], [-1, c]))
        return {
            "dx": x.grad.flatten().tolist(),
            "dmean": mean.grad.tolist(),
            "dvariance": variance.grad.tolist(),
            "dscale": scale.grad.tolist() if scale is not None else None,
            "doffset": offset.grad.tolist(),
        }
    if kind == "batchNormTraining":
        # BatchNorm2d's training forward written out (biased variance normalises), so that autograd also reaches
        # the mean and variance outputs, whose gradients dmean / dvariance stand for any use of them.
        c = case["channels"]
        x = t(case["x"], [-1, c]).requires_grad_()
        scale = t(case["scale"], [c]).requires_grad_()
        offset = t(case["offset"], [c]).requires_grad_()
        mean = x.mean(dim=0)
        variance = x.var(dim=0, unbiased=False)
        y = (x - mean) / torch.sqrt(variance + case["epsilon"]) * scale + offset
        loss = (y * t(case["dy"], [-1, c])).sum()
        if case["dmean"] is not None:
            loss = loss + (mean * t(case["dmean"], [c])).sum() + (variance * t(case["dvariance"], [c])).sum()
        loss.backward()
        reference = torch.nn.functional.batch_norm(x.detach(), None, None, scale.detach(), offset.detach(), True, 0.1, case["epsilon"])
        return {
            "y": y.detach().flatten().tolist(),
            "yBatchNorm": reference.flatten().tolist(),
            "mean": mean.detach().tolist(),
            "variance": variance.detach().tolist(),
            "dx": x.grad.flatten().tolist(),
            "dscale": scale.grad.tolist(),
            "doffset": offset.grad.tolist(),
        }
    if kind == "reluGrad":
        x = t(case["x"], [-1]).requires_grad_()
        torch.relu(x).backward(t(case["dy"], [-1]))
        return x.grad.tolist()
    if kind == "sgd":
        # torch.optim.SGD itself, one step from the given parameter, gradient and (if any) momentum buffer.
        param = torch.nn.Parameter(t(case["param"], [-1]))
        param.grad = t(case["grad"], [-1])
        h = case["hyper"]
        opt = torch.optim.SGD([param], lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                              weight_decay=h["weightDecay"], nesterov=h["nesterov"])
        if case["buffer"] is not None:
            opt.state[param]["momentum_buffer"] = t(case["buffer"], [-1])
        opt.step()
        buf = opt.state[param].get("momentum_buffer")
        return {"param": param.detach().tolist(), "buffer": buf.tolist() if buf is not None else None}
    raise ValueError(f"unknown case kind {kind!r}")


json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)
