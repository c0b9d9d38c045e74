"""PyTorch CPU reference for tools/bench/index.ts: the same models, batch and training step, on the same machine.

Run by the bench (never installs anything), one model per process so that its peak RSS is that model's own:
  /usr/bin/python3 tools/bench/torch_bench.py --models resnet20 [--threads 2] [--min-seconds 5] [--flush-denormal]
Prints one JSON object on stdout. On Debian, `apt-get install python3-torch` provides torch.

The models mirror @wrn/architectures' configs (resolveModelConfig) layer for layer; the parameter counts are
printed so the bench can check they equal the TF.js models'.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlockA(nn.Module):
    """ResNet (He et al. 2016) CIFAR block: conv-BN-ReLU-conv-BN + shortcut A (subsample, zero-pad channels)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class WideBlock(nn.Module):
    """WRN (Zagoruyko and Komodakis 2016) pre-activation block, 1x1 projection where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, stride, 0, bias=False) if cin != cout or stride > 1 else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (self.proj(pre) if self.proj is not None else x)


class ResNeXtBlock(nn.Module):
    """ResNeXt (Xie et al. 2017) bottleneck: 1x1, grouped 3x3 (strided), 1x1; projection shortcut with BN."""

    def __init__(self, cin, mid, cout, groups, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if cin != cout or stride > 1:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class Net(nn.Module):
    def __init__(self, stem, blocks, head_channels, preact_head, num_classes=10):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head_bn = nn.BatchNorm2d(head_channels) if preact_head else None
        self.fc = nn.Linear(head_channels, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        if self.head_bn is not None:
            x = F.relu(self.head_bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet(depth):
    n = (depth - 2) // 6
    blocks, cin = [], 16
    for stage, width in enumerate([16, 32, 64]):
        for b in range(n):
            blocks.append(BasicBlockA(cin, width, 2 if stage > 0 and b == 0 else 1))
            cin = width
    stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
    return Net(stem, blocks, 64, preact_head=False)


def wrn(depth, k):
    n = (depth - 4) // 6
    blocks, cin = [], 16
    for stage, width in enumerate([16 * k, 32 * k, 64 * k]):
        for b in range(n):
            blocks.append(WideBlock(cin, width, 2 if stage > 0 and b == 0 else 1))
            cin = width
    return Net(nn.Conv2d(3, 16, 3, 1, 1, bias=False), blocks, cin, preact_head=True)


def resnext29(cardinality, width):
    blocks, cin = [], 64
    for stage in range(3):
        mid, cout = cardinality * width * 2**stage, 256 * 2**stage
        for b in range(3):
            blocks.append(ResNeXtBlock(cin, mid, cout, cardinality, 2 if stage > 0 and b == 0 else 1))
            cin = cout
    stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
    return Net(stem, blocks, cin, preact_head=False)


def build(name):
    if name.startswith("resnet"):
        return resnet(int(name[len("resnet"):]))
    if name.startswith("wrn-"):
        depth, k = name[len("wrn-"):].split("-")
        return wrn(int(depth), int(k))
    if name.startswith("resnext29-"):
        c, w = name[len("resnext29-"):].rstrip("d").split("x")
        return resnext29(int(c), int(w))
    raise SystemExit(f"torch_bench.py: unknown model {name!r}")


def timed_steps(fn, warmup, min_steps, min_seconds, max_steps):
    """Wall and CPU seconds of each timed step: at least min_steps, and more until min_seconds have passed (at most
    max_steps), after warmup untimed ones. tools/bench/index.ts times its steps by the same rule, so both sides
    report the median of a comparable number of seconds of work, not of 5 steps that one neighbour's burst can
    dominate (ResNet-20's step is ~0.1 s)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    started = time.perf_counter()
    while len(wall) < max_steps and (len(wall) < min_steps or time.perf_counter() - started < min_seconds):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def summary(batch, wall, cpu, threads):
    """Images/s of the median step, every step's ms, and the share of its threads' time the process got (1.0: no
    thread ever waited for a core; well below it: the machine was busy and the figure is the machine's)."""
    return {
        "imagesPerSec": batch / statistics.median(wall),
        "stepMs": [round(w * 1000, 1) for w in wall],
        "cpuShare": sum(cpu) / (sum(wall) * threads),
    }


def bench(name, batch, timing):
    torch.manual_seed(0)
    model = build(name)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()

    threads = torch.get_num_threads()
    model.train()
    train = summary(batch, *timed_steps(train_step, **timing), threads)
    model.eval()
    with torch.no_grad():
        infer = summary(batch, *timed_steps(lambda: model(x).sum().item(), **timing), threads)
    return {
        "model": name,
        "params": params,
        "trainImagesPerSec": train["imagesPerSec"],
        "inferImagesPerSec": infer["imagesPerSec"],
        "trainStepMs": train["stepMs"],
        "inferStepMs": infer["stepMs"],
        "trainCpuShare": train["cpuShare"],
        "inferCpuShare": infer["cpuShare"],
        # The process's high-water mark since it started: run one model per process (as the bench does) for that
        # model's own; with several, each row's figure is the max over it and the rows before it.
        "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def denormal_ab(name, batch, steps):
    """Training steps with denormals kept (PyTorch's default) and flushed, alternating step by step in one process,
    and the share of gradient values that are denormal: whether denormals explain a slow or noisy figure."""
    torch.manual_seed(0)
    model = build(name)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    times = {False: [], True: []}
    denormal = total = 0
    for i in range(2 * steps + 2):
        flush = i % 2 == 1
        torch.set_flush_denormal(flush)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 2:
            times[flush].append(time.perf_counter() - start)
        for p in model.parameters():
            g = p.grad.abs()
            denormal += int(((g > 0) & (g < torch.finfo(torch.float32).tiny)).sum())
            total += g.numel()
    torch.set_flush_denormal(False)
    return {
        "model": name,
        "keptImagesPerSec": batch / statistics.median(times[False]),
        "flushedImagesPerSec": batch / statistics.median(times[True]),
        "denormalGradientShare": denormal / total,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="at least this many timed steps")
    parser.add_argument("--min-seconds", type=float, default=5.0, help="and steps until this much time has passed")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True); off is PyTorch's default")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--params-only", action="store_true")
    parser.add_argument("--denormal-ab", action="store_true", help="training steps with denormals kept and flushed, interleaved")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("torch_bench.py: --flush-denormal: this CPU does not support flushing denormals")
    models = args.models.split(",")
    if args.denormal_ab:
        if not torch.set_flush_denormal(True):
            raise SystemExit("torch_bench.py: --denormal-ab: this CPU does not support flushing denormals")
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": [denormal_ab(m, args.batch, args.steps) for m in models]}, sys.stdout)
        print()
        return
    if args.params_only:
        results = [{"model": m, "params": sum(p.numel() for p in build(m).parameters())} for m in models]
    else:
        timing = {"warmup": args.warmup, "min_steps": args.steps, "min_seconds": args.min_seconds, "max_steps": args.max_steps}
        results = [bench(m, args.batch, timing) for m in models]
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "flushDenormal": args.flush_denormal, "results": results}
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
