"""Writes the PyTorch oracle's fixtures for packages/architectures/test/torch-oracle.test.ts.

usage: /usr/bin/python3 tools/torch-reference/make_fixtures.py CIFAR_BATCH_BIN OUT_DIR

For every case: a reference model (reference_models.py or torchvision) with random weights and non-trivial BN
parameters and running statistics, the input (real CIFAR-10 images, normalised; upsampled to 64x64 for the
ImageNet layouts), and, computed in float64 from the float32 weights: the logits in eval mode, the logits in train
mode (batch statistics) and every BN's running mean and variance after that one train-mode forward.

OUT_DIR/manifest.json describes everything; OUT_DIR/fixture.bin holds the float32 little-endian values it points
to (offsets and sizes in float32 elements). Names and shapes are the reference's own (OIHW kernels); mapping them
onto @wrn's layers is the test's job.
"""

import copy
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as R  # noqa: E402

IMAGES = 4
# The WRN code's CIFAR-10 constants (0..255 units), as @wrn's wrn-cifar preset.
MEAN = np.array([125.3, 123.0, 113.9])
STD = np.array([63.0, 62.1, 66.7])


def cifar_images(path, count):
    raw = np.fromfile(path, dtype=np.uint8, count=count * 3073).reshape(count, 3073)
    x = raw[:, 1:].reshape(count, 3, 32, 32).astype(np.float64)
    return (x - MEAN[None, :, None, None]) / STD[None, :, None, None], raw[:, 0].tolist()


class Writer:
    def __init__(self):
        self.chunks = []
        self.size = 0

    def add(self, array):
        values = np.ascontiguousarray(np.asarray(array, dtype='<f4')).reshape(-1)
        entry = {'offset': self.size, 'shape': list(np.shape(array))}
        self.chunks.append(values)
        self.size += values.size
        return entry


def set_bn(weight, bias, mean, var, generator):
    """Non-trivial BN affine parameters and running statistics."""
    with torch.no_grad():
        weight.copy_(torch.rand(weight.shape, generator=generator, dtype=weight.dtype) + 0.5)
        bias.copy_(torch.randn(bias.shape, generator=generator, dtype=bias.dtype) * 0.2)
        mean.copy_(torch.randn(mean.shape, generator=generator, dtype=mean.dtype) * 0.2)
        var.copy_(torch.rand(var.shape, generator=generator, dtype=var.dtype) * 1.5 + 0.5)


def round_to_float32(tensors):
    # The fixture stores float32; the float64 reference computes with exactly those values.
    with torch.no_grad():
        for t in tensors:
            if t.is_floating_point():
                t.copy_(t.float().double())


def randomize_module(module, generator):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            set_bn(m.weight, m.bias, m.running_mean, m.running_var, generator)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            with torch.no_grad():
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator, dtype=m.bias.dtype) * 0.1)
    round_to_float32(list(module.parameters()) + list(module.buffers()))


def module_case(label, model_name, options, mapping, module, x, writer, generator, blocks=None):
    module = module.double()
    randomize_module(module, generator)
    state = {k: v for k, v in module.state_dict().items() if v.is_floating_point()}
    tensors = {k: writer.add(v.numpy()) for k, v in state.items()}
    module.eval()
    with torch.no_grad():
        eval_logits = module(x)
        trained = copy.deepcopy(module).train()
        train_logits = trained(x)
    running = {k: writer.add(v.numpy()) for k, v in trained.state_dict().items() if k.endswith(('running_mean', 'running_var'))}
    return case(label, model_name, options, mapping, x, tensors, eval_logits, train_logits, running, writer, blocks)


def wrn_case(label, model_name, options, depth, width, x, writer, generator):
    f, params, stats = R.wrn_functional(depth, width, 10)
    params = {k: v.double() for k, v in params.items()}
    stats = {k: v.double() for k, v in stats.items()}
    for base in sorted({k[:-len('.running_mean')] for k in stats if k.endswith('.running_mean')}):
        set_bn(params[base + '.weight'], params[base + '.bias'], stats[base + '.running_mean'], stats[base + '.running_var'], generator)
    with torch.no_grad():
        params['fc.bias'].copy_(torch.randn(params['fc.bias'].shape, generator=generator, dtype=torch.float64) * 0.1)
    round_to_float32(list(params.values()) + list(stats.values()))
    tensors = {k: writer.add(v.numpy()) for k, v in {**params, **stats}.items()}
    with torch.no_grad():
        eval_logits = f(x, params, stats, False)
        trained = {k: v.clone() for k, v in stats.items()}
        train_logits = f(x, params, trained, True)
    running = {k: writer.add(v.numpy()) for k, v in trained.items()}
    return case(label, model_name, options, 'wrn', x, tensors, eval_logits, train_logits, running, writer, None)


def case(label, model_name, options, mapping, x, tensors, eval_logits, train_logits, running, writer, blocks):
    entry = {
        'label': label, 'model': model_name, 'options': options, 'mapping': mapping,
        'input': writer.add(x.numpy()), 'tensors': tensors,
        'evalLogits': writer.add(eval_logits.numpy()), 'trainLogits': writer.add(train_logits.numpy()),
        'runningAfterTrain': running,
    }
    if blocks is not None:
        entry['blocksPerStage'] = blocks
    return entry


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: make_fixtures.py CIFAR_BATCH_BIN OUT_DIR')
    batch, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    images, labels = cifar_images(batch, IMAGES)
    x32 = torch.from_numpy(images).float().double()
    # The ImageNet layouts at 64x64 to stay fast: the same images, upsampled.
    x64 = F.interpolate(torch.from_numpy(images), size=(64, 64), mode='bilinear', align_corners=False).float().double()
    writer = Writer()
    g = torch.Generator().manual_seed(12)
    torch.manual_seed(12)
    cifar = {'numClasses': 10}
    imagenet = {'numClasses': 10, 'inputShape': [64, 64, 3]}
    tv = torchvision.models
    cases = [
        module_case('CIFAR ResNet-20 (akamaster, option A)', 'resnet20', cifar, 'akamaster', R.akamaster_resnet(20), x32, writer, g),
        module_case('pre-act ResNet-20, basic (resnet-pre-act wiring)', 'preact-resnet20', cifar, 'torchvision', R.preact_resnet_basic(3), x32, writer, g),
        module_case('pre-act ResNet bottleneck, 2 blocks/stage (resnet-pre-act.lua)', 'preact-resnet164', cifar, 'torchvision',
                    R.preact_resnet_bottleneck(2), x32, writer, g, blocks=[2, 2, 2]),
        wrn_case('WRN-16-2 (WRN PyTorch code)', 'wrn-16-2', cifar, 16, 2, x32, writer, g),
        module_case('ResNeXt-11 4x4d, CIFAR (resnext.lua form C)', 'resnext11-4x4d', cifar, 'torchvision', R.CifarResNeXt(11, 4, 4), x32, writer, g),
        module_case('torchvision resnet18 at 64x64', 'resnet18', imagenet, 'torchvision', tv.resnet18(num_classes=10), x64, writer, g),
        # torchvision's own classes with fewer blocks per stage (the fixture stays small; block 1 of each stage
        # strides and projects, block 2 of the first stage is an identity block): @wrn's config gets the same counts.
        module_case('torchvision resnet50 layout, blocks 2-1-1-1, at 64x64', 'resnet50', imagenet, 'torchvision',
                    tv.resnet.ResNet(tv.resnet.Bottleneck, [2, 1, 1, 1], num_classes=10), x64, writer, g, blocks=[2, 1, 1, 1]),
        module_case('torchvision resnext50_32x4d layout, blocks 2-1-1-1, at 64x64', 'resnext50-32x4d', imagenet, 'torchvision',
                    tv.resnet.ResNet(tv.resnet.Bottleneck, [2, 1, 1, 1], num_classes=10, groups=32, width_per_group=4), x64, writer, g,
                    blocks=[2, 1, 1, 1]),
        module_case('torchvision wide_resnet50_2 layout, blocks 1-1-1-1, at 64x64', 'wrn-50-2', imagenet, 'torchvision',
                    tv.resnet.ResNet(tv.resnet.Bottleneck, [1, 1, 1, 1], num_classes=10, width_per_group=128), x64, writer, g,
                    blocks=[1, 1, 1, 1]),
    ]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'fixture.bin'), 'wb') as fh:
        for chunk in writer.chunks:
            fh.write(chunk.tobytes())
    manifest = {'format': 'wrn-torch-oracle/1', 'torch': torch.__version__, 'torchvision': torchvision.__version__,
                'labels': labels, 'cases': cases}
    with open(os.path.join(out, 'manifest.json'), 'w') as fh:
        json.dump(manifest, fh)


if __name__ == '__main__':
    main()
