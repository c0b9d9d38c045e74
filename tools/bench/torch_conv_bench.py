"""PyTorch's side of tools/bench/conv-gflops.ts, one JSON line in, one out: {"op": "shape", n, h, w, ci, k, co,
stride} makes the tensors (float32 NCHW, PyTorch's default layout); {"op": "forward"} or {"op": "forwardBackward"}
(autograd, both gradients) runs one call and answers its seconds, so the bench can interleave it with its own. Never installs anything; run by the bench with
/usr/bin/python3 (Debian's python3-torch)."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
args = parser.parse_args()
torch.set_num_threads(args.threads)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


shape = None
for line in sys.stdin:
    r = json.loads(line)
    if r["op"] == "shape":
        x = torch.randn(r["n"], r["ci"], r["h"], r["w"])
        w = torch.randn(r["co"], r["ci"], r["k"], r["k"])
        xg = x.clone().requires_grad_()
        wg = w.clone().requires_grad_()
        shape = r
        dy = torch.randn_like(F.conv2d(x, w, stride=r["stride"], padding=r["k"] // 2))
        print(json.dumps({"ok": True}), flush=True)
        continue
    stride, pad = shape["stride"], shape["k"] // 2
    start = time.perf_counter()
    if r["op"] == "forward":
        with torch.no_grad():
            F.conv2d(x, w, stride=stride, padding=pad)
    else:  # forward + autograd backward: both gradients
        xg.grad = None
        wg.grad = None
        F.conv2d(xg, wg, stride=stride, padding=pad).backward(dy)
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
