"""Reference definitions of the four families, written after the papers' official code (not after @wrn's).

Each follows its source line by line where the source is PyTorch, and translates the Lua Torch modules one to
one where it is Lua (nn.SpatialConvolution(nIn, nOut, kW, kH, dW, dH, padW, padH) -> nn.Conv2d(..., stride=dW,
padding=padW)). They are the oracle of packages/architectures/test/torch-oracle.test.ts; initialisation does not
matter there (the fixture overwrites every weight), but is kept as in the sources.

- akamaster/pytorch_resnet_cifar10 resnet.py: CIFAR ResNet-20..1202, option A shortcut
  (x[:, :, ::2, ::2] zero-padded with planes//4 channels on EACH side).
- szagoruyko/wide-residual-networks pytorch/resnet.py: WRN-d-k as a function of a flat parameter dict.
- KaimingHe/resnet-1k-layers resnet-pre-act.lua: pre-activation bottleneck ResNet-164/1001, stride on the first
  1x1, the projection reading the shared pre-activation; a basic-block variant (ResNet-110 of the same paper)
  with the same wiring, as wide-resnet.lua's wide_basic with k = 1.
- facebookresearch/ResNeXt models/resnext.lua: CIFAR ResNeXt, bottleneck form C (grouped 3x3 with the stride),
  shortcut type B (1x1 conv + BN where the width changes).
- torchvision.models resnet18/50, resnext50_32x4d, wide_resnet50_2 are used as they are.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.init as init


# --- akamaster/pytorch_resnet_cifar10 -------------------------------------------------------------------------

def _akamaster_weights_init(m):
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(m.weight)


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class AkamasterBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # option A, as in the source
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class AkamasterResNet(nn.Module):
    def __init__(self, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)
        self.apply(_akamaster_weights_init)

    def _make_layer(self, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(AkamasterBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def akamaster_resnet(depth, num_classes=10):
    n = (depth - 2) // 6
    return AkamasterResNet([n, n, n], num_classes)


# --- szagoruyko/wide-residual-networks pytorch/resnet.py (functional, parameter dict) -----------------------

def wrn_functional(depth, width, num_classes):
    """Returns (f, params, stats) as pytorch/resnet.py does; f(input, params, stats, mode)."""
    assert (depth - 4) % 6 == 0
    n = (depth - 4) // 6
    widths = [int(v * width) for v in (16, 32, 64)]

    def conv_params(ni, no, k=1):
        return init.kaiming_normal_(torch.empty(no, ni, k, k))

    def bnparams(c):
        return {'weight': torch.rand(c), 'bias': torch.zeros(c)}

    def bnstats(c):
        return {'running_mean': torch.zeros(c), 'running_var': torch.ones(c)}

    params, stats = {}, {}

    def add(prefix, d, into):
        for k, v in d.items():
            into[f'{prefix}.{k}'] = v

    params['conv0'] = conv_params(3, 16, 3)
    for g, (ni, no) in enumerate(zip([16] + widths[:2], widths)):
        for b in range(n):
            base = f'group{g}.block{b}'
            i = ni if b == 0 else no
            params[f'{base}.conv0'] = conv_params(i, no, 3)
            params[f'{base}.conv1'] = conv_params(no, no, 3)
            add(f'{base}.bn0', bnparams(i), params)
            add(f'{base}.bn1', bnparams(no), params)
            add(f'{base}.bn0', bnstats(i), stats)
            add(f'{base}.bn1', bnstats(no), stats)
            if i != no:
                params[f'{base}.convdim'] = conv_params(i, no, 1)
    add('bn', bnparams(widths[2]), params)
    add('bn', bnstats(widths[2]), stats)
    params['fc.weight'] = init.kaiming_normal_(torch.empty(num_classes, widths[2]))
    params['fc.bias'] = torch.zeros(num_classes)

    def batch_norm(x, params, stats, base, mode):
        return F.batch_norm(x, weight=params[base + '.weight'], bias=params[base + '.bias'],
                            running_mean=stats[base + '.running_mean'], running_var=stats[base + '.running_var'],
                            training=mode)

    def block(x, params, stats, base, mode, stride):
        o1 = F.relu(batch_norm(x, params, stats, base + '.bn0', mode))
        y = F.conv2d(o1, params[base + '.conv0'], stride=stride, padding=1)
        o2 = F.relu(batch_norm(y, params, stats, base + '.bn1', mode))
        z = F.conv2d(o2, params[base + '.conv1'], stride=1, padding=1)
        if base + '.convdim' in params:
            return z + F.conv2d(o1, params[base + '.convdim'], stride=stride)
        return z + x

    def group(o, params, stats, base, mode, stride):
        for i in range(n):
            o = block(o, params, stats, '%s.block%d' % (base, i), mode, stride if i == 0 else 1)
        return o

    def f(input, params, stats, mode):
        x = F.conv2d(input, params['conv0'], padding=1)
        g0 = group(x, params, stats, 'group0', mode, 1)
        g1 = group(g0, params, stats, 'group1', mode, 2)
        g2 = group(g1, params, stats, 'group2', mode, 2)
        o = F.relu(batch_norm(g2, params, stats, 'bn', mode))
        o = F.avg_pool2d(o, 8, 1, 0)
        o = o.view(o.size(0), -1)
        return F.linear(o, params['fc.weight'], params['fc.bias'])

    return f, params, stats


# --- KaimingHe/resnet-1k-layers resnet-pre-act.lua -------------------------------------------------------------

def _conv_init_fan_out(model):
    # ConvInit: n = kW*kH*nOutputPlane; weight ~ N(0, sqrt(2/n)); BNInit: 1, 0; Linear bias 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, (2.0 / n) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.bias.data.zero_()


class PreActBottleneck(nn.Module):
    """bottleneck(nInputPlane, nOutputPlane, stride) of resnet-pre-act.lua."""

    def __init__(self, n_in, n_out, stride):
        super().__init__()
        n_mid = n_out // 4
        self.bn1 = nn.BatchNorm2d(n_in)
        self.conv1 = nn.Conv2d(n_in, n_mid, 1, stride, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(n_mid)
        self.conv2 = nn.Conv2d(n_mid, n_mid, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(n_mid)
        self.conv3 = nn.Conv2d(n_mid, n_out, 1, 1, 0, bias=False)
        # "Residual Units for increasing dimensions": the 1x1 projection reads the common BN-ReLU
        self.downsample = nn.Conv2d(n_in, n_out, 1, stride, 0, bias=False) if n_in != n_out else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (self.downsample(pre) if self.downsample is not None else x)


class PreActBasic(nn.Module):
    """The same wiring with two 3x3 convs (wide-resnet.lua's wide_basic, k = 1): stride on the first."""

    def __init__(self, n_in, n_out, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(n_in)
        self.conv1 = nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, 1, 1, bias=False)
        self.downsample = nn.Conv2d(n_in, n_out, 1, stride, 0, bias=False) if n_in != n_out or stride != 1 else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (self.downsample(pre) if self.downsample is not None else x)


class PreActResNet(nn.Module):
    def __init__(self, block, n, stages, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stages[0], 3, 1, 1, bias=False)
        layers, n_in = [], stages[0]
        for i, n_out in enumerate(stages[1:]):
            blocks = []
            for b in range(n):
                blocks.append(block(n_in, n_out, (1 if i == 0 else 2) if b == 0 else 1))
                n_in = n_out
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = nn.BatchNorm2d(n_in)
        self.fc = nn.Linear(n_in, num_classes)
        _conv_init_fan_out(self)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, out.size()[3])
        return self.fc(out.view(out.size(0), -1))


def preact_resnet_bottleneck(blocks_per_stage, num_classes=10):
    return PreActResNet(PreActBottleneck, blocks_per_stage, [16, 64, 128, 256], num_classes)


def preact_resnet_basic(blocks_per_stage, num_classes=10):
    return PreActResNet(PreActBasic, blocks_per_stage, [16, 16, 32, 64], num_classes)


# --- facebookresearch/ResNeXt models/resnext.lua (CIFAR, form C, shortcut B) -------------------------------------

class ResNeXtBottleneckC(nn.Module):
    def __init__(self, n_in, n, stride, cardinality, base_width):
        super().__init__()
        d = (n * base_width) // 64  # D = math.floor(n * (opt.baseWidth/64))
        width = d * cardinality
        self.conv1 = nn.Conv2d(n_in, width, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, n * 4, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(n * 4)
        self.downsample = None
        if n_in != n * 4:  # shortcutType 'B': a 1x1 conv + BN where the width changes
            self.downsample = nn.Sequential(nn.Conv2d(n_in, n * 4, 1, stride, bias=False), nn.BatchNorm2d(n * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class CifarResNeXt(nn.Module):
    def __init__(self, depth, cardinality, base_width, num_classes=10):
        super().__init__()
        n = (depth - 2) // 9
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        n_in, layers = 64, []
        for i, features in enumerate([64, 128, 256]):
            blocks = []
            for b in range(n):
                blocks.append(ResNeXtBottleneckC(n_in, features, (1 if i == 0 else 2) if b == 0 else 1, cardinality, base_width))
                n_in = features * 4
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(1024, num_classes)
        _conv_init_fan_out(self)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, 8, 1)
        return self.fc(out.view(out.size(0), -1))
