#!/usr/bin/python3
"""Reference outputs of torchvision's ImageFolder + evaluation transform.

Used by the Go tests of datasets/ (folder_test.go) as the independent truth:

    pil_reference.py ROOT SIZE RESIZE OUT

loads ROOT with torchvision.datasets.ImageFolder (PIL loader, convert("RGB")),
applies Resize(RESIZE) (PIL bilinear) and CenterCrop(SIZE), and writes
  OUT.json  {"classes": [...], "samples": [[path, label], ...]}
  OUT.u8    the cropped images, uint8, N x SIZE x SIZE x 3 (HWC)
  OUT.f32   ToTensor() + Normalize(ImageNet mean/std), float32 little-endian, N x 3 x SIZE x SIZE
A file PIL cannot load is written as zeros and listed under "errors".

    pil_reference.py --jpeg OUT.jpg W H SEED MODE SUBSAMPLING

writes a JPEG of W x H random smooth pixels with libjpeg (MODE RGB, L or
CMYK; SUBSAMPLING 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0): what Go cannot encode.

    pil_reference.py --crops OUT SIZE FILE,TOP,LEFT,H,W,FLIP ...

writes, for each argument, torchvision's resized_crop(img, TOP, LEFT, H, W,
[SIZE, SIZE]) (PIL bilinear) of the RGB image, mirrored by hflip when FLIP is
1 (RandomResizedCrop + RandomHorizontalFlip with these drawn parameters), as
SIZE x SIZE x 3 bytes one after the other in OUT.u8.

    pil_reference.py --decode OUT FILE...

writes each FILE as PIL opens it and converts it to RGB: OUT.json
{"sizes": [[w, h], ...]} and OUT.u8, the H x W x 3 pixels one after the other.
"""
import json
import sys

import numpy as np
from PIL import Image


def write_jpeg(out, w, h, seed, mode, subsampling):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    chans = []
    for c in range(4):
        fx, fy, ph = rng.uniform(0.02, 0.2), rng.uniform(0.02, 0.2), rng.uniform(0, 6.3)
        v = 127 + 100 * np.sin(fx * xx + fy * yy + ph) + rng.integers(-15, 16, size=(h, w))
        chans.append(np.clip(v, 0, 255).astype(np.uint8))
    img = Image.fromarray(np.stack(chans, -1), "CMYK")
    if mode != "CMYK":
        img = Image.fromarray(np.stack(chans[:3], -1), "RGB").convert(mode)
    img.save(out, quality=90, subsampling=subsampling)


def decode(out, files):
    sizes = []
    with open(out + ".u8", "wb") as fu:
        for f in files:
            with open(f, "rb") as fh:
                img = Image.open(fh).convert("RGB")
            sizes.append(img.size)
            fu.write(np.asarray(img, dtype=np.uint8).tobytes())
    with open(out + ".json", "w") as f:
        json.dump({"sizes": sizes}, f)


def crops(out, size, specs):
    from torchvision.transforms import functional as F

    with open(out + ".u8", "wb") as fu:
        for spec in specs:
            f, top, left, h, w, flip = spec.split(",")
            with open(f, "rb") as fh:
                img = Image.open(fh).convert("RGB")
            img = F.resized_crop(img, int(top), int(left), int(h), int(w), [size, size])
            if flip == "1":
                img = F.hflip(img)
            fu.write(np.asarray(img, dtype=np.uint8).tobytes())


def main():
    if sys.argv[1] == "--crops":
        crops(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
        return
    if sys.argv[1] == "--jpeg":
        a = sys.argv
        write_jpeg(a[2], int(a[3]), int(a[4]), int(a[5]), a[6], int(a[7]))
        return
    if sys.argv[1] == "--decode":
        decode(sys.argv[2], sys.argv[3:])
        return
    import torch  # only this mode needs torch: the others start faster without it
    import torchvision
    from torchvision import transforms

    root, size, resize, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    crop = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size)])
    norm = transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    ds = torchvision.datasets.ImageFolder(root)
    errors = []
    with open(out + ".u8", "wb") as fu, open(out + ".f32", "wb") as ff:
        for i, (path, _) in enumerate(ds.samples):
            try:
                img = crop(ds.loader(path))
                fu.write(np.asarray(img, dtype=np.uint8).tobytes())
                ff.write(norm(img).numpy().astype("<f4").tobytes())
            except Exception as e:  # noqa: BLE001 - recorded for the test
                errors.append([path, str(e)])
                fu.write(bytes(size * size * 3))
                ff.write(bytes(4 * size * size * 3))
    with open(out + ".json", "w") as f:
        json.dump({"classes": ds.classes, "samples": ds.samples, "errors": errors,
                   "torchvision": torchvision.__version__, "pil": Image.__version__,
                   "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
