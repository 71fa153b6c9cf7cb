#!/usr/bin/python3
"""Train torchvision's MobileNetV2 on Fashion-MNIST, save a safetensors state_dict + record.

The network is torchvision.models.mobilenet_v2(num_classes=10) (width 1.0) with the one
patch of brecq's "mobilenetv2-s1" (brecq/models MobileNetV2S1):

  features.0.0        Conv2d(1, 32, 3, stride=1, padding=1)   (was 3 channels, stride 2)

so the feature maps are 28 (stem, row 1), 14 (row 2), 7 (row 3), 4 (rows 4-5), 2 (rows 6-7 and
the 1280-wide last conv) instead of torchvision's /32 (28 → 1). Parameter names are torchvision's.

Data: the IDX files brecq's datasets package reads ($BRECQ_DATA_DIR, else Debian's
dataset-fashion-mnist in /usr/share/datasets/fashion-mnist), normalised as there,
(p/255 − 0.2860)/0.3530; training augmentation as datasets.DefaultAugment: zero-pixel padding 2,
random 28×28 crop, random horizontal flip. SGD with momentum, cosine learning rate per step,
weight decay on every parameter, fixed seed. Run with Debian's python3 (torch 1.13, torchvision
0.14):

  /usr/bin/python3 scripts/train_mobilenetv2.py --epochs 5 --batch 128 --lr 0.05 --out models/mobilenetv2-fmnist.safetensors

(the shipped checkpoint: test top-1 91.11 % after 5 epochs, 38 min on 2 cores.)

The checkpoint and its JSON record (--out with .json) are rewritten after every epoch. torch 1.13
has no safetensors module, so save_safetensors writes the format directly (8-byte little-endian
header length, JSON header {name: {dtype, shape, data_offsets}} plus "__metadata__", raw
little-endian F32 data); it is the function to use for your own mobilenet checkpoint:

  from train_mobilenetv2 import save_safetensors
  save_safetensors("mine.safetensors", model.state_dict())
"""
import argparse
import gzip
import json
import math
import os
import platform
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MEAN, STD = 0.2860, 0.3530  # datasets.FashionMNISTNorm
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def save_safetensors(path, state_dict, metadata=None):
    """Writes state_dict (num_batches_tracked dropped) as F32 safetensors, atomically."""
    entries = {}
    for name, t in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue
        data = t.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        entries[name] = ("F32", list(t.shape), data)
    write_safetensors(path, entries, metadata)


def write_safetensors(path, entries, metadata=None):
    """Writes entries {name: (dtype, shape, little-endian bytes)} as safetensors, in the given
    order, atomically (a temporary file renamed into place)."""
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, data) in entries.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def mobilenetv2_s1(classes=10, in_channels=1):
    """torchvision's mobilenet_v2 with a stride-1, in_channels-channel stem (features.0.0)."""
    m = torchvision.models.mobilenet_v2(num_classes=classes)
    m.features[0][0] = nn.Conv2d(in_channels, 32, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(m.features[0][0].weight, mode="fan_out")  # torchvision's conv init
    return m


def data_dir():
    d = os.environ.get("BRECQ_DATA_DIR") or "/usr/share/datasets/fashion-mnist"
    return d


def read_idx(d, name):
    for fn, op in ((name, open), (name + ".gz", gzip.open)):
        p = os.path.join(d, fn)
        if os.path.exists(p):
            with op(p, "rb") as f:
                raw = f.read()
            break
    else:
        sys.exit("train_mobilenetv2: %s(.gz) not found in %s (set BRECQ_DATA_DIR or apt-get install dataset-fashion-mnist)" % (name, d))
    magic, = struct.unpack(">I", raw[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    t = torch.frombuffer(bytearray(raw[4 + 4 * nd:]), dtype=torch.uint8)
    return t.reshape(dims)


def load():
    d = data_dir()
    xs = [read_idx(d, f) for f in FILES]
    return xs[0], xs[1].long(), xs[2], xs[3].long()


def normalise(u8):
    return (u8.float().div(255) - MEAN) / STD


def augment(u8, gen, pad=2):
    """Zero-pixel padding, random crop at (dy, dx) in 0..2·pad, flip with probability 1/2."""
    n, h, w = u8.shape
    p = F.pad(u8, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    ys = dy[:, None] + torch.arange(h)[None, :]                                 # n×h
    xs = dx[:, None] + torch.arange(w)[None, :]                                 # n×w
    xs = torch.where(flip[:, None], xs.flip(1), xs)
    out = p[torch.arange(n)[:, None, None], ys[:, :, None], xs[:, None, :]]
    return out


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(normalise(x[i:i + batch]).unsqueeze(1))
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/mobilenetv2-fmnist.safetensors")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--wd", type=float, default=4e-5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (timing only; 0: all)")
    a = ap.parse_args()
    if a.epochs < 1 or a.batch < 1 or not (a.lr > 0):
        sys.exit("train_mobilenetv2: --epochs and --batch must be ≥ 1 and --lr > 0")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    xtr, ytr, xte, yte = load()
    model = mobilenetv2_s1(classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.wd)
    steps_per_epoch = len(xtr) // a.batch  # the last partial batch is dropped
    if a.max_steps:
        steps_per_epoch = min(steps_per_epoch, a.max_steps)
    total = a.epochs * steps_per_epoch
    record = {
        "command": "/usr/bin/python3 scripts/train_mobilenetv2.py " + " ".join(sys.argv[1:]),
        "model": "mobilenetv2-s1",
        "arch_note": "torchvision mobilenet_v2 width 1.0, num_classes 10; features.0.0 1-channel 3x3 stride 1",
        "steps_per_epoch": steps_per_epoch, "train_images_per_epoch": steps_per_epoch * a.batch,
        "data": "fashion-mnist",
        "normalisation": {"mean": MEAN, "std": STD},
        "augment": "crop pad 2 (zero pixels) + hflip",
        "seed": a.seed, "epochs": a.epochs, "batch": a.batch, "lr": a.lr, "lr_schedule": "cosine per step to 0",
        "momentum": a.momentum, "weight_decay": a.wd, "threads": a.threads,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "machine": "%s/%s, %d cores" % (platform.system().lower(), platform.machine(), os.cpu_count()),
        "history": [],
    }
    step = 0
    for ep in range(1, a.epochs + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            x = normalise(augment(xtr[idx], gen)).unsqueeze(1)
            y = ytr[idx]
            lr = 0.5 * a.lr * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if i % 50 == 0:
                print("epoch %d step %d/%d loss %.4f lr %.5f %.1fs" % (ep, i, steps_per_epoch, loss.item(), lr, time.time() - t0), flush=True)
        train_s = time.time() - t0
        top1 = evaluate(model, xte, yte)
        rec = {"epoch": ep, "train_loss": loss_sum / seen, "train_top1": 100.0 * correct / seen, "test_top1": top1,
               "seconds": time.time() - t0, "train_seconds": train_s, "seconds_per_step": train_s / steps_per_epoch,
               "lr_end": lr, "load_average": os.getloadavg()[0]}
        record["history"].append(rec)
        print(json.dumps(rec), flush=True)
        save_safetensors(a.out, model.state_dict(), {"format": "pt", "model": "mobilenetv2-s1", "data": "fashion-mnist", "epoch": ep,
                                                     "producer": "scripts/train_mobilenetv2.py", "test_top1": "%.2f" % top1})
        jp = os.path.splitext(a.out)[0] + ".json"
        with open(jp + ".tmp", "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        os.replace(jp + ".tmp", jp)


if __name__ == "__main__":
    main()
