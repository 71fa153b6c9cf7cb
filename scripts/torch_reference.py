#!/usr/bin/python3
"""Reference logits from PyTorch for the Go networks in brecq/models (test-only tool).

For each architecture it builds torchvision 0.14's model with a fixed seed (random
initialisation, BatchNorm affine parameters and running statistics randomised, eval
mode) and writes into --out:

  <arch>.safetensors          the state_dict, torchvision names (F32)
  <arch>-authors.safetensors  the same weights under the names of the BRECQ authors'
                              models/ folder (resnet18, resnet50, mobilenetv2, regnetx*)
  <arch>-<size>.safetensors   "input" [2,3,size,size] and "logits" [2,classes]

mobilenetv2-s1 is mobilenet_v2 with the stem at stride 1 (brecq's MobileNetV2S1); its
state_dict carries the metadata model=mobilenetv2-s1 and its references a 28×28 size too.

The logits are computed in float64 from the float32 weights and input, so they are
the exact network output up to float64 rounding. Run with Debian's python3:

  /usr/bin/python3 scripts/torch_reference.py --out DIR --arch resnet18 --sizes 224,64

torch 1.13 has no safetensors module, so the format is written directly: 8-byte
little-endian header length, JSON header {name: {dtype, shape, data_offsets}}, raw
little-endian data.
"""
import argparse
import os

import torch
import torchvision.models as tvm
from torchvision.models.regnet import BlockParams, RegNet

from train_mobilenetv2 import save_safetensors

CLASSES = 10  # a small classifier keeps the files small; the Go side reads it from the checkpoint


def mobilenetv2_s1():
    # brecq's mobilenetv2-s1: torchvision's mobilenet_v2 with the stem at stride 1
    # (the patch scripts/train_mobilenetv2.py applies, here with 3 input channels).
    m = tvm.mobilenet_v2(num_classes=CLASSES)
    m.features[0][0].stride = (1, 1)
    return m


def regnet(depth, w_0, w_a, w_m, group_width):
    # torchvision 0.14 has no regnet_x_600mf; its RegNet class with the RegNetX
    # parameters of the paper (the authors' regnetX_*_config) builds it.
    return RegNet(BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width),
                  num_classes=CLASSES)


BUILDERS = {
    "resnet18": lambda: tvm.resnet18(num_classes=CLASSES),
    "resnet50": lambda: tvm.resnet50(num_classes=CLASSES),
    "mobilenetv2": lambda: tvm.mobilenet_v2(num_classes=CLASSES),
    "mobilenetv2-s1": mobilenetv2_s1,
    "regnetx600m": lambda: regnet(16, 48, 36.97, 2.24, 24),
    "regnetx3200m": lambda: regnet(25, 88, 26.31, 2.25, 48),
    "mnasnet": lambda: tvm.mnasnet1_0(num_classes=CLASSES),
}


def authors_mobilenetv2(name):
    """torchvision mobilenet_v2 -> the authors' models/mobilenetv2.py names.

    Their InvertedResidual keeps conv, BN and ReLU6 flat in one Sequential `conv`:
    expand ratio 1: conv.0 dw, conv.1 BN, (2 ReLU6), conv.3 pw-linear, conv.4 BN;
    otherwise conv.0 pw, conv.1 BN, conv.3 dw, conv.4 BN, conv.6 pw-linear, conv.7 BN.
    torchvision nests Conv2dNormActivation: conv.0.{0,1}, conv.1.{0,1} (expand) and
    conv.{1,2} or conv.{2,3} for the projection. Stem features.0.{0,1}, last conv
    features.18.{0,1} and classifier.1 are the same in both.
    """
    p = name.split(".")
    if p[0] != "features" or len(p) < 4 or p[2] != "conv":
        return name
    i, rest = int(p[1]), p[3:]
    if i == 1:  # expand ratio 1: [dw conv+BN], proj conv, proj BN
        table = {("0", "0"): "0", ("0", "1"): "1", ("1",): "3", ("2",): "4"}
    else:
        table = {("0", "0"): "0", ("0", "1"): "1", ("1", "0"): "3", ("1", "1"): "4", ("2",): "6", ("3",): "7"}
    for k, v in table.items():
        if tuple(rest[:len(k)]) == k:
            return ".".join(p[:3] + [v] + rest[len(k):])
    raise ValueError(name)


def authors_regnet(name):
    """torchvision RegNet -> the authors' models/regnet.py names.

    stem.0/stem.1 -> stem.conv/stem.bn; trunk_output.block{s}.block{s}-{j}.X ->
    s{s}.b{j+1}.X with proj.0 -> proj, proj.1 -> bn, f.{a,b,c}.0 -> f.{a,b,c},
    f.{a,b,c}.1 -> f.{a,b,c}_bn; fc -> head.fc.
    """
    p = name.split(".")
    if p[0] == "stem":
        return ".".join([p[0], {"0": "conv", "1": "bn"}[p[1]]] + p[2:])
    if p[0] == "fc":
        return "head." + name
    s = p[1][len("block"):]
    j = int(p[2].split("-")[1])
    rest = p[3:]
    if rest[0] == "proj":
        rest = [{"0": "proj", "1": "bn"}[rest[1]]] + rest[2:]
    else:  # f.a.0 / f.a.1
        rest = ["f", rest[1] + ("" if rest[2] == "0" else "_bn")] + rest[3:]
    return ".".join(["s" + s, "b%d" % (j + 1)] + rest)


# Architectures whose state_dict cannot tell them apart from another one: the
# file's metadata names them (brecq's LoadArch reads "model").
METADATA = {"mobilenetv2-s1": {"model": "mobilenetv2-s1"}}

# Input sizes written besides --sizes: the 28×28 the variant is made for.
EXTRA_SIZES = {"mobilenetv2-s1": [28]}

AUTHORS = {
    "resnet18": lambda n: n,  # their models/resnet.py uses torchvision's names
    "resnet50": lambda n: n,
    "mobilenetv2": authors_mobilenetv2,
    "regnetx600m": authors_regnet,
    "regnetx3200m": authors_regnet,
}


def randomise(model, gen):
    """Random BatchNorm affine parameters and running statistics (eval mode uses them)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            elif isinstance(m, torch.nn.Linear):
                m.bias.copy_(torch.randn(m.out_features, generator=gen) * 0.1)


def write_safetensors(path, tensors, metadata=None):
    # One safetensors writer for the repository's scripts: train_mobilenetv2's.
    save_safetensors(path, tensors, metadata)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default=",".join(BUILDERS))
    ap.add_argument("--sizes", default="224,64")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(2)
    for arch in a.arch.split(","):
        torch.manual_seed(a.seed)
        gen = torch.Generator().manual_seed(a.seed)
        model = BUILDERS[arch]()
        randomise(model, gen)
        model.eval()
        sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        write_safetensors(os.path.join(a.out, arch + ".safetensors"), sd, METADATA.get(arch))
        if arch in AUTHORS:
            ren = {AUTHORS[arch](k): v for k, v in sd.items()}
            assert len(ren) == len(sd)
            write_safetensors(os.path.join(a.out, arch + "-authors.safetensors"), ren)
        model64 = model.double()
        for size in [int(s) for s in a.sizes.split(",")] + EXTRA_SIZES.get(arch, []):
            x = torch.randn(2, 3, size, size, generator=gen)
            with torch.no_grad():
                logits = model64(x.double())
            write_safetensors(os.path.join(a.out, "%s-%d.safetensors" % (arch, size)),
                              {"input": x, "logits": logits})
        print(arch, "done")


if __name__ == "__main__":
    main()
