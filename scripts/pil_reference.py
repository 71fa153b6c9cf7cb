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

    pil_reference.py --cmyk-jpeg OUT.jpg W H SEED

writes a CMYK JPEG of W x H random smooth pixels (Go cannot encode one).
"""
import json
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms


def cmyk_jpeg(out, w, h, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [(127 + 120 * np.sin(xx / (7 + 3 * c) + yy / (11 + c) + c)).astype(np.uint8) for c in range(4)]
    Image.fromarray(np.stack(chans, -1), "CMYK").save(out, quality=95)


def main():
    if sys.argv[1] == "--cmyk-jpeg":
        cmyk_jpeg(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
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
