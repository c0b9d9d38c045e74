"""The official recipes' learning rates and torch.optim.SGD's updates, for packages/training/test/torch-recipes.test.ts.

usage: /usr/bin/python3 tools/torch-reference/schedules.py < request.json > answer.json

request: {"epochs": {"wrn-cifar": [200, 10], ...}, "iterations": {"resnet-cifar": [0, 399, ...]}, "sgd": [...]}
answer:  {"epochs": {"wrn-cifar": {"200": [lr of 0-based epoch 0, 1, ...], "10": [...]}, ...},
          "iterations": {"resnet-cifar": {"0": lr, ...}}, "sgd": [[params after step 1], ...]}

Each recipe is computed the way its official code does, with torch.optim.lr_scheduler where the code's rule is
one of its schedulers:
- WRN (pytorch/main.py, as train.lua): at the start of 0-based epoch e, if e + 1 is in epoch_step, lr *= ratio
  (a new optimizer); epoch_step is the script's list ({60,120,160} of 200; {80,120} of 160 for SVHN), scaled to
  other lengths as the same fractions of the run (rounded up). Cross-checked with MultiStepLR(milestones = epoch_step - 1).
- ResNeXt (train.lua): lr = LR * 0.1^decay, decay = epoch/nEpochs > 0.74 and 2 or > 0.49 and 1 or 0 (1-based), as
  a LambdaLR.
- ResNet CIFAR: MultiStepLR([32000, 48000], 0.1) stepped per iteration (64k iterations).
- pre-activation ResNet CIFAR: the same, times 0.1 for the first 400 iterations (a LambdaLR).
"""

import bisect
import json
import math
import sys

import torch

WRN_STEPS = {'wrn-cifar': ([60, 120, 160], 200, 0.1, 0.2), 'wrn-svhn': ([80, 120], 160, 0.01, 0.1)}


def one_param_optimizer(lr):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def per_epoch(scheduler_factory, lr, epochs):
    opt = one_param_optimizer(lr)
    scheduler = scheduler_factory(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]['lr'])
        opt.step()
        scheduler.step()
    return out


def wrn_official(name, epochs):
    steps, length, lr, ratio = WRN_STEPS[name]
    epoch_step = [math.ceil(s * epochs / length) for s in steps]
    out = []
    for e in range(epochs):  # pytorch/main.py on_start_epoch
        if e + 1 in epoch_step:
            lr = lr * ratio
        out.append(lr)
    cross = per_epoch(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [s - 1 for s in epoch_step], ratio), WRN_STEPS[name][2], epochs)
    assert all(abs(a - b) <= 1e-12 * max(1.0, abs(a)) for a, b in zip(out, cross)), (name, epochs)
    return out


def resnext_official(epochs):
    def factor(e0):
        epoch = e0 + 1
        decay = 2 if epoch / epochs > 0.74 else 1 if epoch / epochs > 0.49 else 0
        return 0.1 ** decay
    return per_epoch(lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor), 0.1, epochs)


def per_iteration(name, wanted):
    wanted = sorted(set(wanted))
    opt = one_param_optimizer(0.1)
    if name == 'resnet-cifar':
        scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, [32000, 48000], 0.1)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda it: (0.1 if it < 400 else 1.0) * 0.1 ** bisect.bisect_right([32000, 48000], it))
    out = {}
    last = wanted[-1] if wanted else -1
    for it in range(last + 1):
        if it in wanted:
            out[str(it)] = opt.param_groups[0]['lr']
        opt.step()
        scheduler.step()
    return out


def sgd_run(spec):
    """torch.optim.SGD on given parameters and per-step gradients; a new optimizer where spec resets."""
    params = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)) for p in spec['params']]
    options = dict(lr=spec['lr'][0], momentum=spec['momentum'], dampening=spec['dampening'],
                   weight_decay=spec['weightDecay'], nesterov=spec['nesterov'])
    opt = torch.optim.SGD(params, **options)
    history = []
    for step, grads in enumerate(spec['grads']):
        if step in spec.get('resetAt', []):
            opt = torch.optim.SGD(params, **options)
        for group in opt.param_groups:
            group['lr'] = spec['lr'][step]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        history.append([p.detach().tolist() for p in params])
    return history


def main():
    request = json.load(sys.stdin)
    answer = {'epochs': {}, 'iterations': {}, 'sgd': []}
    for name, lengths in request.get('epochs', {}).items():
        answer['epochs'][name] = {}
        for epochs in lengths:
            lrs = wrn_official(name, epochs) if name in WRN_STEPS else resnext_official(epochs)
            answer['epochs'][name][str(epochs)] = lrs
    for name, wanted in request.get('iterations', {}).items():
        answer['iterations'][name] = per_iteration(name, wanted)
    answer['sgd'] = [sgd_run(spec) for spec in request.get('sgd', [])]
    json.dump(answer, sys.stdout)


if __name__ == '__main__':
    main()
