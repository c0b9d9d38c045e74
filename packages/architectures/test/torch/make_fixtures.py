"""Writes PyTorch checkpoints for the TF.js importer's tests, with the values and logits they must reproduce.

Usage: /usr/bin/python3 make_fixtures.py OUT_DIR CIFAR_BATCH_FILE FIXTURE...

Fixtures:
  tensors        a dict of awkward tensors (views with offsets and strides, shared storages, 0-d, empty,
                 float16/bfloat16/int64) as .pth and as .safetensors
  resnet18       torchvision resnet18(num_classes=10)
  resnext50      torchvision resnext50_32x4d(num_classes=10)
  wrn            WRN-16-2 in the official code's flat parameter dict (szagoruyko/wide-residual-networks,
                 pytorch/resnet.py), saved as its main.py does: {'params', 'epoch', 'optimizer'}
  akamaster      akamaster/pytorch_resnet_cifar10's resnet20 (option A), saved as its trainer does:
                 {'epoch', 'state_dict' (DataParallel 'module.' names), 'best_prec1'}

For each model NAME it writes NAME.pth and NAME.values.{json,bin} (every tensor as float32, in state_dict order),
and but for resnext50 (large: its .pth only) NAME.safetensors, NAME-f16.pth and NAME-bf16.safetensors, and for the ImageNet-layout and WRN models
NAME.input.bin (two real CIFAR-10 images, NHWC float32, normalised; upsampled to 64x64 for the torchvision models)
with NAME.logits.bin (eval mode, PyTorch's symmetric padding) and NAME.logits-tfsame.bin (the same network with
TF's 'same' padding emulated, what a TF.js model without symmetric padding computes).
"""
import collections
import json
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.manual_seed(0)
torch.set_num_threads(2)

SAFETENSORS_DTYPES = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64',
                      torch.float64: 'F64', torch.int32: 'I32', torch.uint8: 'U8'}


def raw_bytes(t):
    """The tensor's bytes in row-major order (numpy has no bfloat16, so go through a same-sized int view)."""
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_safetensors(tensors, path):
    """The safetensors format by hand (the module may be missing): u64 header length, JSON header, raw data."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        data = raw_bytes(t)
        header[name] = {'dtype': SAFETENSORS_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header['__metadata__'] = {'format': 'pt'}
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)  # the data section starts 8-byte aligned, as the reference writer pads
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def save_values(tensors, path):
    """NAME.values.json {key: {dtype, shape, offset}} and NAME.values.bin: every float tensor as float32."""
    index, offset = {}, 0
    with open(path + '.bin', 'wb') as f:
        for name, t in tensors.items():
            entry = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape)}
            if t.is_floating_point():
                data = t.detach().float().contiguous().numpy().tobytes()
                entry['offset'] = offset
                f.write(data)
                offset += len(data) // 4
            index[name] = entry
    with open(path + '.json', 'w') as f:
        json.dump(index, f)


def randomize_batch_norm(state):
    """Non-trivial BN parameters and running statistics, so that a swapped mean/var or weight/bias shows."""
    for name, t in state.items():
        if name.endswith('running_mean'):
            t.copy_(torch.randn_like(t) * 0.2)
        elif name.endswith('running_var'):
            t.copy_(torch.rand_like(t) + 0.5)
        elif name.endswith('num_batches_tracked'):
            t.fill_(1234)
    for name in [n for n in state if n.endswith('running_var')]:
        base = name[: -len('running_var')]
        state[base + 'weight'].copy_(torch.rand_like(state[base + 'weight']) + 0.5)
        state[base + 'bias'].copy_(torch.randn_like(state[base + 'bias']) * 0.2)


def cifar_images(batch_file, count=2):
    with open(batch_file, 'rb') as f:
        data = f.read(count * 3073)
    images = [torch.tensor(list(data[i * 3073 + 1:(i + 1) * 3073]), dtype=torch.float32).view(3, 32, 32) for i in range(count)]
    return torch.stack(images)  # NCHW, 0..255


def tf_same_pads(size, kernel, stride):
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TfSamePad(nn.Module):
    """Wraps a strided conv or max-pool to pad as TF's 'same' does (the extra pixel after), not symmetrically."""

    def __init__(self, inner, kernel, stride, value):
        super().__init__()
        self.inner, self.kernel, self.stride, self.value = inner, kernel, stride, value

    def forward(self, x):
        top, bottom = tf_same_pads(x.shape[2], self.kernel, self.stride)
        left, right = tf_same_pads(x.shape[3], self.kernel, self.stride)
        return self.inner(F.pad(x, (left, right, top, bottom), value=self.value))


def with_tf_same_padding(module):
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.stride[0] > 1 and child.kernel_size[0] > 1:
            conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, 0, groups=child.groups, bias=child.bias is not None)
            conv.weight = child.weight
            setattr(module, name, TfSamePad(conv, child.kernel_size[0], child.stride[0], 0.0))
        elif isinstance(child, nn.MaxPool2d):
            setattr(module, name, TfSamePad(nn.MaxPool2d(child.kernel_size, child.stride, 0), child.kernel_size, child.stride, float('-inf')))
        else:
            with_tf_same_padding(child)
    return module


def write_floats(t, path):
    with open(path, 'wb') as f:
        f.write(t.detach().float().contiguous().numpy().tobytes())


def save_variants(out, name, state, wrap=lambda s: s, variants=True):
    """float32 .pth and .safetensors, float16 .pth, bfloat16 .safetensors, and the values of each."""
    torch.save(wrap(state), f'{out}/{name}.pth')
    save_values(state, f'{out}/{name}.values')
    if not variants:
        return
    save_safetensors(state, f'{out}/{name}.safetensors')
    half = collections.OrderedDict((k, v.detach().half() if v.is_floating_point() else v) for k, v in state.items())
    torch.save(wrap(half), f'{out}/{name}-f16.pth')
    save_values(half, f'{out}/{name}-f16.values')
    bf16 = collections.OrderedDict((k, v.detach().bfloat16() if v.is_floating_point() else v) for k, v in state.items())
    save_safetensors(bf16, f'{out}/{name}-bf16.safetensors')
    save_values(bf16, f'{out}/{name}-bf16.values')


def torchvision_fixture(out, name, build, batch_file, variants=True):
    model = build(num_classes=10)
    with torch.no_grad():
        randomize_batch_norm(model.state_dict())
        model.fc.bias.copy_(torch.randn(10) * 0.1)
    model.eval()
    save_variants(out, name, model.state_dict(), variants=variants)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    x = F.interpolate(cifar_images(batch_file), size=(64, 64), mode='bilinear', align_corners=False)
    x = (x - mean) / std
    write_floats(x.permute(0, 2, 3, 1), f'{out}/{name}.input.bin')
    with torch.no_grad():
        write_floats(model(x), f'{out}/{name}.logits.bin')
        write_floats(with_tf_same_padding(model)(x), f'{out}/{name}.logits-tfsame.bin')


def wrn_official(depth, width, num_classes):
    """The official code's parameters and function (pytorch/resnet.py and utils.py), with an option for TF padding."""
    n = (depth - 4) // 6
    widths = [int(v * width) for v in (16, 32, 64)]

    def conv_params(ni, no, k=1):
        return nn.init.kaiming_normal_(torch.empty(no, ni, k, k))

    def bnparams(c):
        return {'weight': torch.rand(c), 'bias': torch.zeros(c), 'running_mean': torch.zeros(c), 'running_var': torch.ones(c)}

    def block_params(ni, no):
        p = {'conv0': conv_params(ni, no, 3), 'conv1': conv_params(no, no, 3), 'bn0': bnparams(ni), 'bn1': bnparams(no)}
        if ni != no:
            p['convdim'] = conv_params(ni, no, 1)
        return p

    nested = {
        'conv0': conv_params(3, 16, 3),
        'group0': {f'block{i}': block_params(16 if i == 0 else widths[0], widths[0]) for i in range(n)},
        'group1': {f'block{i}': block_params(widths[0] if i == 0 else widths[1], widths[1]) for i in range(n)},
        'group2': {f'block{i}': block_params(widths[1] if i == 0 else widths[2], widths[2]) for i in range(n)},
        'bn': bnparams(widths[2]),
        'fc': {'weight': nn.init.kaiming_normal_(torch.empty(num_classes, widths[2])), 'bias': torch.zeros(num_classes)},
    }

    def flatten(d, prefix=''):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flatten(v, prefix + k + '.')
            else:
                yield prefix + k, v

    params = dict(flatten(nested))
    # utils.set_requires_grad_except_bn_: everything but the running statistics is trained
    for k, v in params.items():
        v.requires_grad = not k.endswith('running_mean') and not k.endswith('running_var')

    def f(x, params, mode, tf_same=False):
        def conv(x, w, stride, padding):
            if tf_same and stride > 1 and w.shape[-1] > 1:
                top, bottom = tf_same_pads(x.shape[2], w.shape[-1], stride)
                left, right = tf_same_pads(x.shape[3], w.shape[-1], stride)
                return F.conv2d(F.pad(x, (left, right, top, bottom)), w, stride=stride)
            return F.conv2d(x, w, stride=stride, padding=padding)

        def bn(x, base):
            return F.batch_norm(x, weight=params[base + '.weight'], bias=params[base + '.bias'],
                                running_mean=params[base + '.running_mean'], running_var=params[base + '.running_var'], training=mode)

        def block(x, base, stride):
            o1 = F.relu(bn(x, base + '.bn0'))
            y = conv(o1, params[base + '.conv0'], stride, 1)
            o2 = F.relu(bn(y, base + '.bn1'))
            z = conv(o2, params[base + '.conv1'], 1, 1)
            if base + '.convdim' in params:
                return z + conv(o1, params[base + '.convdim'], stride, 0)
            return z + x

        def group(o, base, stride):
            for i in range(n):
                o = block(o, '%s.block%d' % (base, i), stride if i == 0 else 1)
            return o

        x = conv(x, params['conv0'], 1, 1)
        g0 = group(x, 'group0', 1)
        g1 = group(g0, 'group1', 2)
        g2 = group(g1, 'group2', 2)
        o = F.relu(bn(g2, 'bn'))
        o = F.avg_pool2d(o, 8, 1, 0)
        o = o.view(o.size(0), -1)
        return F.linear(o, params['fc.weight'], params['fc.bias'])

    return f, params


def wrn_fixture(out, batch_file):
    f, params = wrn_official(16, 2, 10)
    with torch.no_grad():
        randomize_batch_norm(params)
        params['fc.bias'].copy_(torch.randn(10) * 0.1)
    optimizer = torch.optim.SGD([v for v in params.values() if v.requires_grad], 0.1, momentum=0.9, weight_decay=5e-4)
    x = (cifar_images(batch_file) - torch.tensor([125.3, 123.0, 113.9]).view(1, 3, 1, 1)) / torch.tensor([63.0, 62.1, 66.7]).view(1, 3, 1, 1)
    # one step, so that the saved optimizer state holds momentum buffers as the real checkpoints do
    F.cross_entropy(f(x, params, True), torch.tensor([0, 1])).backward()
    optimizer.step()
    state = collections.OrderedDict(params)  # saved with requires_grad, as main.py does
    save_variants(out, 'wrn', state, wrap=lambda s: dict(params=s, epoch=3, optimizer=optimizer.state_dict()))
    write_floats(x.permute(0, 2, 3, 1), f'{out}/wrn.input.bin')
    with torch.no_grad():
        write_floats(f(x, state, False), f'{out}/wrn.logits.bin')
        write_floats(f(x, state, False, tf_same=True), f'{out}/wrn.logits-tfsame.bin')


class AkamasterBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10 resnet.py BasicBlock, option A (its names; the shortcut has no weights)."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if stride != 1 or in_planes != planes else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # option A: subsample, and planes//4 zero channels on each side
        shortcut = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), 'constant', 0)
        return F.relu(out + shortcut)


class AkamasterResNet(nn.Module):
    def __init__(self, blocks, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths, in_planes = [16, 32, 64], 16
        for i, planes in enumerate(widths):
            layer = []
            for b in range(blocks):
                layer.append(AkamasterBlock(in_planes, planes, 2 if (i > 0 and b == 0) else 1))
                in_planes = planes
            setattr(self, f'layer{i + 1}', nn.Sequential(*layer))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def akamaster_fixture(out, batch_file):
    model = AkamasterResNet(3)
    with torch.no_grad():
        randomize_batch_norm(model.state_dict())
    model.eval()
    state = collections.OrderedDict(model.state_dict())
    # trainer.py saves the DataParallel-wrapped model: every name starts with 'module.'
    save_variants(out, 'akamaster', state,
                  wrap=lambda s: {'epoch': 7, 'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in s.items()), 'best_prec1': 91.25})
    # trainer.py normalises with ImageNet's statistics
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    x = (cifar_images(batch_file) - mean) / std
    write_floats(x.permute(0, 2, 3, 1), f'{out}/akamaster.input.bin')
    with torch.no_grad():
        write_floats(model(x), f'{out}/akamaster.logits.bin')
        write_floats(with_tf_same_padding(model)(x), f'{out}/akamaster.logits-tfsame.bin')  # rewires model: last
    # the same with an int64 tensor where a float weight belongs
    state = collections.OrderedDict((k, v.clone()) for k, v in state.items())
    state['linear.bias'] = torch.arange(10, dtype=torch.int64)
    torch.save(state, f'{out}/akamaster-int64.pth')


def tensors_fixture(out):
    base = torch.arange(60, dtype=torch.float32) / 7 - 3
    matrix = base.view(6, 10)
    tensors = collections.OrderedDict([
        ('contiguous', torch.randn(2, 3, 4, 5)),
        ('transposed', matrix.t()),                    # strides (1, 10), shares base's storage
        ('offset_slice', matrix[2:5, 3:9]),           # storage offset 23, strides (10, 1)
        ('stepped', matrix[:, ::3]),                   # strides (10, 3)
        ('permuted', torch.randn(2, 3, 4, 5).permute(3, 1, 0, 2)),
        ('scalar', torch.tensor(2.5)),
        ('empty', torch.zeros(0, 3)),
        ('half', (torch.randn(7, 3) * 100).half()),
        ('half_special', torch.tensor([0.0, -0.0, 6.1e-5, 5.96e-8, 65504.0, float('inf'), -float('inf')], dtype=torch.float16)),
        ('half_view', (torch.randn(4, 6)).half().t()),
        ('bfloat', (torch.randn(5, 2) * 1e3).bfloat16()),
        ('bfloat_view', torch.randn(3, 8).bfloat16()[:, 1::2]),
        ('long', torch.arange(6, dtype=torch.int64).view(2, 3)),
    ])
    torch.save(tensors, f'{out}/tensors.pth')
    save_safetensors(collections.OrderedDict((k, v.contiguous()) for k, v in tensors.items()), f'{out}/tensors.safetensors')
    save_values(tensors, f'{out}/tensors.values')
    # an int64 weight where a conv's weight belongs, and a state_dict nested two levels down
    torch.save({'meta': {'note': 'x'}, 'epoch': 1}, f'{out}/no-state-dict.pth')
    torch.save([torch.zeros(2)], f'{out}/list.pth')
    torch.save(torch.zeros(2), f'{out}/tensor.pth')
    torch.save(tensors, f'{out}/tensors-legacy.pth', _use_new_zipfile_serialization=False)
    # the same archive re-zipped with deflate (torch stores entries; a zip tool may not)
    import zipfile
    with zipfile.ZipFile(f'{out}/tensors.pth') as src, zipfile.ZipFile(f'{out}/tensors-deflated.pth', 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))


def main():
    out, batch_file, *fixtures = sys.argv[1:]
    for fixture in fixtures:
        if fixture == 'tensors':
            tensors_fixture(out)
        elif fixture == 'resnet18':
            torchvision_fixture(out, 'resnet18', torchvision.models.resnet18, batch_file)
        elif fixture == 'resnext50':
            torchvision_fixture(out, 'resnext50', torchvision.models.resnext50_32x4d, batch_file, variants=False)
        elif fixture == 'wrn':
            wrn_fixture(out, batch_file)
        elif fixture == 'akamaster':
            akamaster_fixture(out, batch_file)
        else:
            raise SystemExit(f'unknown fixture {fixture!r}')


if __name__ == '__main__':
    main()
