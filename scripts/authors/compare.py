#!/usr/bin/python3
"""Quantize a brecq checkpoint with the BRECQ authors' own PyTorch code and
compare it with a brecq run record, side by side.

    /usr/bin/python3 scripts/authors/compare.py --authors-repo ~/src/BRECQ \
        results/w2a2-block-2000.json results/w2a2-adaround-2000.json

For each run record (written by `brecq quantize --json`), this script

  1. copies the authors' repository (github.com/yhhhli/BRECQ, a local clone
     given by --authors-repo; never vendored here) to a temporary folder and
     patches its CUDA-only device lines (`device = 'cuda'`) to the CPU;
  2. builds the CIFAR-style ResNet of the checkpoint in PyTorch from the
     authors' own `models/resnet.py` BasicBlock (1-channel 3x3 stem, no
     max-pool, three stages of 16/32/64·width channels, 1x1 conv + BN
     shortcuts, global average pool, fc), so that their QuantModel maps each
     block to QuantBasicBlock, and loads the safetensors weights;
  3. takes exactly the record's calibration images (its `calib_indices` in the
     training split, in that order), normalised as brecq's datasets package
     does: (p/255 - mean) / std;
  4. runs the authors' pipeline as their main_imagenet.py does (lines 181-244):
     per-channel weight quantizers with the L_p range search, first and last
     layer at 8 bits (their set_first_last_layer_to_8bit), weight stage
     (AdaRound with asym=True, lambda, warm-up, beta 20->2, Adam 1e-3, batch
     32), then — at activation bits < 32 — one network-wide activation range
     initialisation on the first 64 calibration images, network output
     quantization disabled, and the activation stage (LSQ, Adam lr 4e-4 cosine,
     L_p p=2.4, batch 32) with the record's iteration counts;
  5. evaluates top-1 on the 10 000 test images: FP, nearest rounding (their
     QuantModel with no reconstruction, activations initialised the same way),
     weights only after the weight stage, and fully quantized;
  6. prints a table beside the record's own numbers and writes a JSON per
     record (--out-dir).

Granularity "block" (method brecq) is their recon_model with
block_reconstruction; granularity "layer" (method adaround) calls their
layer_reconstruction on every weight layer in the weight stage. Their code
has no single layer owning a block's post-addition activation quantizer
(layer_reconstruction on conv2 or on the shortcut would hand Adam a step size
that is None), so in the layer-wise activation stage the step sizes are
learned per block with block_reconstruction, as brecq's ActUnits does.
Method nearest evaluates the nearest-rounding network only.

Needs PyTorch and torchvision (Debian: python3-torch, python3-torchvision)
and numpy; nothing else. Runs on the CPU.
"""

import argparse
import gzip
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from train_mobilenetv2 import write_safetensors  # noqa: E402  (the scripts' one safetensors writer)

# Normalisation constants of brecq's datasets package (datasets/batch.go).
NORMS = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}
DATA_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


# ---------------------------------------------------------------- inputs

def read_raw_safetensors(path):
    """A safetensors file's header (dict) and data bytes."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def read_safetensors(path):
    """A minimal safetensors reader (F32 tensors; other dtypes refused)."""
    header, data = read_raw_safetensors(path)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] == "I64":  # num_batches_tracked, unused
            continue
        if info["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s, only F32 is read" % (path, name, info["dtype"]))
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, header.get("__metadata__", {})


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        buf = f.read()
    magic, = struct.unpack(">I", buf[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    return np.frombuffer(buf[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def find_idx(folder, base):
    for name in (base, base + ".gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError("%s(.gz) not in %s (set BRECQ_DATA_DIR)" % (base, folder))


def load_data(name):
    folder = os.environ.get("BRECQ_DATA_DIR") or DATA_DIRS.get(name)
    if not folder:
        raise SystemExit("data set %s: set BRECQ_DATA_DIR to the folder of its IDX files" % name)
    arrays = [read_idx(find_idx(folder, b)) for b in IDX_FILES]
    mean, std = NORMS[name]

    def norm(images):
        # float64 then one rounding to float32, as datasets.Normalization.Value
        x = (images.astype(np.float64) / 255.0 - mean) / std
        return torch.from_numpy(x.astype(np.float32)).unsqueeze(1)

    return arrays, norm


# ---------------------------------------------------------------- the network

def build_resnet(authors_models_resnet, depth, width, in_ch, classes):
    """CIFAR-style ResNet-(6n+2) from the authors' BasicBlock (models/resnet.py),
    torchvision parameter names as brecq writes them."""
    BasicBlock = authors_models_resnet.BasicBlock
    n = (depth - 2) // 6
    c0 = 16 * width

    class CIFARResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_ch, c0, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c0)
            self.relu = nn.ReLU(inplace=True)
            inp = c0
            for s in (1, 2, 3):
                out = c0 << (s - 1)
                blocks = []
                for j in range(n):
                    stride = 2 if (s > 1 and j == 0) else 1
                    down = None
                    if stride != 1 or inp != out:
                        down = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                    blocks.append(BasicBlock(inp, out, stride, down, norm_layer=nn.BatchNorm2d))
                    inp = out
                setattr(self, "layer%d" % s, nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(inp, classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return CIFARResNet()


def load_weights(model, tensors):
    sd = model.state_dict()
    missing = [k for k in sd if k not in tensors and not k.endswith("num_batches_tracked")]
    extra = [k for k in tensors if k not in sd]
    if missing or extra:
        raise SystemExit("checkpoint does not match the network: missing %s, extra %s" % (missing, extra))
    for k in sd:
        if k in tensors:
            if tuple(sd[k].shape) != tuple(tensors[k].shape):
                raise SystemExit("%s: shape %s in the checkpoint, %s in the network" %
                                 (k, list(tensors[k].shape), list(sd[k].shape)))
            sd[k] = tensors[k]
    model.load_state_dict(sd)


# ---------------------------------------------------------------- the authors' code

def patched_copy(repo):
    """Copy the authors' repository to a temporary folder and make its device
    lines CPU ones. Returns the folder and the list of patched lines."""
    tmp = tempfile.mkdtemp(prefix="brecq-authors-")
    dst = os.path.join(tmp, "BRECQ")
    shutil.copytree(repo, dst, ignore=shutil.ignore_patterns(".git"))
    patched = []
    for rel in ("quant/block_recon.py", "quant/layer_recon.py"):
        p = os.path.join(dst, rel)
        with open(p) as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            if re.search(r"device\s*=\s*'cuda'", line):
                lines[i] = line.replace("'cuda'", "'cpu'")
                patched.append("%s:%d: %s -> %s" % (rel, i + 1, line.strip(), lines[i].strip()))
        with open(p, "w") as f:
            f.write("\n".join(lines))
    if not patched:
        raise SystemExit("no `device = 'cuda'` line found in %s: not the expected BRECQ repository" % repo)
    return tmp, dst, patched


def seed_all(seed):
    # as the authors' main_imagenet.py seed_all (minus the CUDA calls)
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def top1(model, x, y, batch=500):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        out = model(x[i:i + batch])
        correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    return 100.0 * correct / x.shape[0]


def run_one(rec, args, authors, data):
    """The authors' pipeline on one run record. Returns a result dict."""
    quant = authors["quant"]
    QuantModel, QuantModule, BaseQuantBlock = quant.QuantModel, quant.QuantModule, quant.BaseQuantBlock
    o = rec["options"]
    method, gran = o["Method"], o.get("Granularity", "block")
    if method not in ("brecq", "adaround", "nearest"):
        raise SystemExit("method %s: the authors' main script runs BRECQ (block) and layer-wise "
                         "reconstruction only" % method)
    if method == "brecq" and gran != "block":
        raise SystemExit("granularity %s: their main script reconstructs blocks (recon_model)" % gran)
    if method == "brecq" and o.get("Loss", "mse") != "mse":
        raise SystemExit("loss %s: their main script runs opt_mode='mse'" % o.get("Loss"))
    wbits, abits = o["WBits"], o["ABits"]
    act_quant = abits < 32
    notes = []
    if o.get("FirstLast", 8) != 8:
        notes.append("record has first/last weights at %d bits; the authors' code sets 8" % o["FirstLast"])
    if act_quant and o.get("ClassifierInputBits", 8) not in (0, abits):
        notes.append("record has the classifier input at %d bits; the authors' code leaves it at "
                     "the activation bits (run brecq with --classifier-input-bits 0)" % o["ClassifierInputBits"])
    if act_quant and o.get("stem_output_bits", 8) not in (8,):
        notes.append("record has the stem output at %s bits; the authors' code sets 8" % o.get("stem_output_bits"))

    seed = int(o.get("Seed", 1))
    seed_all(seed)
    (trX, trY, teX, teY), norm = data
    idx = rec["calib_indices"]
    cali = norm(trX[idx])
    nt = args.test_limit or teX.shape[0]
    test_x, test_y = norm(teX[:nt]), torch.from_numpy(teY[:nt].astype(np.int64))

    tensors, meta = read_safetensors(args.model)
    cnn = build_resnet(authors["resnet"], args.depth, args.width, 1, 10)
    load_weights(cnn, tensors)
    cnn.eval()
    res = {"record": os.path.basename(rec["_path"]), "record_command": rec.get("command"),
           "checkpoint": args.model, "method": method, "granularity": gran if method != "nearest" else "-",
           "wbits": wbits, "abits": abits, "seed": seed, "calib_images": len(idx),
           "weight_iters": o["WeightIters"], "act_iters": o["ActIters"] if act_quant else 0,
           "batch": o.get("Batch", 32), "lambda": o.get("Lambda", 0.01), "warmup": o.get("WarmUp", 0.2),
           "beta": [o.get("BetaStart", 20), o.get("BetaEnd", 2)], "act_lr": o.get("ActLR", 4e-4),
           "act_p": o.get("ActP", 2.4), "test_images": nt, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "calib_indices_sha256": indices_digest(idx), "authors_commit": authors["commit"], "patched_lines": authors["patched"], "notes": notes}
    t_start = time.time()
    res["fp_top1"] = top1(cnn, test_x, test_y)

    # main_imagenet.py:181-188
    wq = {"n_bits": wbits, "channel_wise": True, "scale_method": "mse"}
    aq = {"n_bits": abits if act_quant else 8, "channel_wise": False, "scale_method": "mse", "leaf_param": act_quant}
    qnn = QuantModel(model=cnn, weight_quant_params=wq, act_quant_params=aq)
    qnn.eval()
    qnn.set_first_last_layer_to_8bit()
    dev = torch.device("cpu")
    # main_imagenet.py:194-195: weight quantizer initialisation
    qnn.set_quant_state(True, False)
    with torch.no_grad():
        _ = qnn(cali[:64].to(dev))

    def init_acts():
        # main_imagenet.py:233-238
        qnn.set_quant_state(True, True)
        with torch.no_grad():
            _ = qnn(cali[:64].to(dev))
        qnn.disable_network_output_quantization()

    if method == "nearest":
        if act_quant:
            init_acts()
        qnn.set_quant_state(True, act_quant)
        res["quant_top1"] = top1(qnn, test_x, test_y)
        res["seconds_total"] = time.time() - t_start
        return res

    batch = o.get("Batch", 32)
    kw = dict(cali_data=cali, iters=o["WeightIters"], weight=o.get("Lambda", 0.01), asym=True,
              b_range=(o.get("BetaStart", 20), o.get("BetaEnd", 2)), warmup=o.get("WarmUp", 0.2),
              act_quant=False, opt_mode="mse", batch_size=batch)
    if o.get("WeightLR", 1e-3) != 1e-3:
        notes.append("record's weight lr %g; the authors' code uses Adam's default 1e-3" % o["WeightLR"])
    log = []

    names = {m: n for n, m in qnn.model.named_modules()}

    def unit_loss(module, cache, act_q, p):
        # the stage's loss (their lp_loss, reduction 'none') on the whole
        # calibration cache, the unit in the state their function puts it in
        inp, tgt = cache
        qnn.set_quant_state(False, False)
        module.set_quant_state(True, act_q)
        with torch.no_grad():
            out = torch.cat([module(inp[i:i + 256]) for i in range(0, inp.shape[0], 256)])
            return float(quant.quant_layer.lp_loss(out, tgt, p=p))

    def call(fn, kind, module, kwargs):
        t0 = time.time()
        entry = {"stage": "activations" if kwargs["act_quant"] else "weights", "kind": kind,
                 "unit": names.get(module, "?")}
        p = kwargs.get("p", 2.0)
        if args.unit_losses:
            cache = quant.data_utils.save_inp_oup_data(qnn, module, cali, kwargs.get("asym", False),
                                                       kwargs["act_quant"], batch)
            entry["loss_before"] = unit_loss(module, cache, kwargs["act_quant"], p)
        t1 = time.time()
        fn(qnn, module, **kwargs)
        entry["seconds"] = round(time.time() - t1, 2)
        if not kwargs["act_quant"]:
            hs = [m.weight_quantizer.get_soft_targets().detach() for m in module.modules()
                  if isinstance(m, QuantModule)]
            h = torch.cat([x.flatten() for x in hs])
            entry["h_decided"] = float(((h == 0) | (h == 1)).float().mean())
        if args.unit_losses:
            entry["loss_after"] = unit_loss(module, cache, kwargs["act_quant"], p)
            entry["loss_p"] = p
            entry["diag_seconds"] = round(time.time() - t0 - entry["seconds"], 2)
        log.append(entry)
        print("   %s %s %s: %.0f s%s" % (entry["stage"], kind, entry["unit"], entry["seconds"],
              (", loss %.4g -> %.4g" % (entry["loss_before"], entry["loss_after"])) if args.unit_losses else ""),
              flush=True)

    def recon(model, kwargs, layerwise):
        # main_imagenet.py:204-224 (recon_model); layer-wise descends into blocks
        for name, module in model.named_children():
            if isinstance(module, QuantModule):
                if module.ignore_reconstruction:
                    continue
                call(quant.layer_reconstruction, "layer", module, kwargs)
            elif isinstance(module, BaseQuantBlock):
                if module.ignore_reconstruction:
                    continue
                if layerwise and not kwargs["act_quant"]:
                    recon(module, kwargs, layerwise)
                    continue
                call(quant.block_reconstruction, "block", module, kwargs)
            else:
                recon(module, kwargs, layerwise)

    layerwise = method == "adaround"
    t0 = time.time()
    if args.rounding_from:
        install_rounding(qnn, quant, args.rounding_from)
        res["rounding_from"] = args.rounding_from
        res["rounding_sha256"] = file_digest(args.rounding_from)
    else:
        recon(qnn, kw, layerwise)
    res["weight_seconds"] = time.time() - t0
    if args.rounding_out:
        write_rounding(qnn, quant, args.rounding_out)
    qnn.set_quant_state(weight_quant=True, act_quant=False)
    res["weight_only_top1"] = top1(qnn, test_x, test_y)
    if act_quant:
        init_acts()
        kw = dict(cali_data=cali, iters=o["ActIters"], act_quant=True, opt_mode="mse",
                  lr=o.get("ActLR", 4e-4), p=o.get("ActP", 2.4), batch_size=batch)
        t0 = time.time()
        recon(qnn, kw, layerwise)
        res["act_seconds"] = time.time() - t0
        qnn.set_quant_state(weight_quant=True, act_quant=True)
    res["quant_top1"] = top1(qnn, test_x, test_y)
    res["calib_seconds"] = res["weight_seconds"] + res.get("act_seconds", 0.0)
    res["units"] = log
    res["seconds_total"] = time.time() - t_start
    return res


# ---------------------------------------------------------------- roundings
#
# A rounding is the weight stage's result in brecq's export layout (brecq
# quantize --out; read by brecq quantize --rounding-from): per layer
# "<layer>.weight_int" (U8 codes q), "<layer>.weight_scale" and
# "<layer>.weight_zero_point" (F32, per output channel), w_q = s·(q − z).

def brecq_name(module_name):
    """brecq's layer name of a QuantModule of their QuantModel (the block's
    shortcut QuantModule is "downsample"; brecq, like torchvision, names the
    convolution "downsample.0")."""
    return re.sub(r"\.downsample$", ".downsample.0", module_name)


def quant_modules(qnn, quant):
    return [(brecq_name(n), m) for n, m in qnn.model.named_modules() if isinstance(m, quant.QuantModule)]


def write_rounding(qnn, quant, path):
    """Their current rounding of every layer, as codes in brecq's layout."""
    ts, meta = {}, {"producer": "scripts/authors/compare.py (the BRECQ authors' code)"}
    with torch.no_grad():
        for name, m in quant_modules(qnn, quant):
            wq = m.weight_quantizer
            w = m.org_weight.data
            delta, zp = wq.delta, wq.zero_point
            if isinstance(wq, quant.adaptive_rounding.AdaRoundQuantizer):
                t = torch.floor(w / delta) + (wq.alpha >= 0).float()
            else:
                t = torch.round(w / delta)
            codes = torch.clamp(t + zp, 0, wq.n_levels - 1)
            c = w.shape[0]
            ts[name + ".weight_int"] = ("U8", list(w.shape), codes.numpy().astype(np.uint8).tobytes())
            for suffix, v in ((".weight_scale", delta), (".weight_zero_point", zp)):
                ts[name + suffix] = ("F32", [c], torch.as_tensor(v).reshape(-1).expand(c).numpy().astype("<f4").tobytes())
            meta[name + ".wbits"] = str(wq.n_bits)
    write_safetensors(path, {k: ts[k] for k in sorted(ts)}, meta)
    print("   wrote their rounding to %s" % path, flush=True)


def read_rounding(path):
    header, data = read_raw_safetensors(path)
    out = {}
    for name, info in header.items():
        if not name.endswith(".weight_int"):
            continue
        layer = name[:-len(".weight_int")]
        if info["dtype"] != "U8":
            raise SystemExit("%s: %s has dtype %s, want U8" % (path, name, info["dtype"]))
        arrs = []
        for key, dt in ((name, np.uint8), (layer + ".weight_scale", "<f4"), (layer + ".weight_zero_point", "<f4")):
            if key not in header:
                raise SystemExit("%s: no %s beside %s" % (path, key, name))
            a, b = header[key]["data_offsets"]
            arrs.append(np.frombuffer(data[a:b], dtype=dt).reshape(header[key]["shape"]))
        out[layer] = arrs
    if not out:
        raise SystemExit("%s: no <layer>.weight_int tensors: not a rounding" % path)
    return out


def install_rounding(qnn, quant, path):
    """Put the rounding in path into their model in place of their weight
    stage: each reconstructed layer gets their AdaRoundQuantizer with the
    file's step sizes and zero points and alpha = ±1 so that its hard rounding
    floor(w/s) + 1[alpha >= 0] gives the file's codes; the stem (which their
    code never reconstructs) keeps nearest rounding, checked against the file."""
    rd = read_rounding(path)
    mods = quant_modules(qnn, quant)
    missing = [n for n, _ in mods if n not in rd]
    extra = [n for n in rd if n not in dict(mods)]
    if missing or extra:
        raise SystemExit("%s: layers missing %s, unknown %s" % (path, missing, extra))
    with torch.no_grad():
        for name, m in mods:
            codes, scale, zp = rd[name]
            w = m.org_weight.data
            shape = [-1] + [1] * (w.dim() - 1)
            delta = torch.from_numpy(scale.copy()).reshape(shape)
            z = torch.from_numpy(zp.copy()).reshape(shape)
            codes = torch.from_numpy(codes.astype(np.float32)).reshape(w.shape)
            n = m.weight_quantizer.n_levels
            fl = torch.floor(w / delta)
            down, up = torch.clamp(fl + z, 0, n - 1), torch.clamp(fl + 1 + z, 0, n - 1)
            if m.ignore_reconstruction:
                near = torch.clamp(torch.round(w / delta) + z, 0, n - 1)
                if not torch.equal(near, codes):
                    raise SystemExit("%s: layer %s is rounded to nearest by their code, the file's codes are not" % (path, name))
                m.weight_quantizer.delta, m.weight_quantizer.zero_point = delta, z
                continue
            bad = ~((codes == down) | (codes == up))
            if bad.any():
                raise SystemExit("%s: layer %s: %d codes are neither floor(w/s) nor floor(w/s) + 1" % (path, name, int(bad.sum())))
            aq = quant.adaptive_rounding.AdaRoundQuantizer(uaq=m.weight_quantizer, round_mode="learned_hard_sigmoid",
                                                           weight_tensor=w)
            aq.delta, aq.zero_point = delta, z
            aq.alpha = nn.Parameter(torch.where(codes == up, torch.ones_like(w), -torch.ones_like(w)))
            aq.soft_targets = False
            m.weight_quantizer = aq
            if not torch.equal(aq(w), (codes - z) * delta):
                raise SystemExit("%s: layer %s: the installed rounding does not give the file's codes" % (path, name))
    print("   weight stage: the rounding of %s" % path, flush=True)


def file_digest(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def indices_digest(idx):
    import hashlib
    return hashlib.sha256(",".join(str(int(i)) for i in idx).encode()).hexdigest()


def nearest_record(rec):
    r = json.loads(json.dumps(rec))
    r["options"]["Method"] = "nearest"
    return r


def import_authors(repo):
    tmp, dst, patched = patched_copy(repo)
    sys.path.insert(0, dst)
    import importlib
    quant = importlib.import_module("quant")
    resnet = importlib.import_module("models.resnet")
    try:
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        commit = None
    return {"quant": quant, "resnet": resnet, "tmp": tmp, "patched": patched, "commit": commit}


# ---------------------------------------------------------------- table

def fmt(v):
    return "%.2f" % v if isinstance(v, (int, float)) else "–"


def table(pairs):
    rows = ["| W/A | method | granularity | iters (W/A) | calib | seed | authors top-1 | brecq top-1 | Δ (brecq − authors) | authors nearest | brecq nearest | authors FP | brecq FP | authors calib (s) | brecq calib (s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rec, a, an in pairs:
        o = rec["options"]
        q = rec.get("quant_top1")
        if o["Method"] == "nearest":
            q = rec.get("quant_top1", rec.get("nearest_top1"))
        d = q - a["quant_top1"] if isinstance(q, (int, float)) else None
        rn = rec.get("nearest_top1")
        if o["Method"] == "nearest":
            rn = q
        rows.append("| W%dA%d | %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            o["WBits"], o["ABits"], o["Method"], a["granularity"],
            "%d/%d" % (o["WeightIters"], o["ActIters"]) if o["Method"] != "nearest" else "–",
            a["calib_images"], a["seed"], fmt(a["quant_top1"]), fmt(q),
            ("%+.2f" % d) if d is not None else "–",
            fmt(an["quant_top1"] if an else (a["quant_top1"] if o["Method"] == "nearest" else None)),
            fmt(rn), fmt(a["fp_top1"]), fmt(rec.get("fp_top1")),
            fmt(a.get("calib_seconds")), fmt(rec.get("calib_seconds"))))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", help="brecq run records (brecq quantize --json)")
    ap.add_argument("--authors-repo", help="local clone of github.com/yhhhli/BRECQ")
    ap.add_argument("--model", default=None, help="safetensors checkpoint (default: the record's)")
    ap.add_argument("--depth", type=int, default=None, help="ResNet depth (default: from the record's model name)")
    ap.add_argument("--width", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--nearest", action="store_true", help="also evaluate nearest rounding at each record's bits")
    ap.add_argument("--unit-losses", action="store_true",
                    help="record each unit's loss on the whole calibration cache before and after each stage "
                         "(one extra caching pass per unit; does not change the run)")
    ap.add_argument("--rounding-out", metavar="FILE", default=None,
                    help="write their weight stage's rounding here in brecq's layout (brecq quantize --rounding-from reads it); one record only")
    ap.add_argument("--rounding-from", metavar="FILE", default=None,
                    help="skip their weight stage: take every layer's rounding from this file (brecq quantize --out writes one); one record only")
    ap.add_argument("--out-dir", default=None, help="write <record name> as JSON here (the authors' results)")
    ap.add_argument("--test-limit", type=int, default=0,
                    help="evaluate on the first N test images only (smoke tests; 0 = all 10 000)")
    ap.add_argument("--check", action="store_true",
                    help="only build the network from the authors' BasicBlock, load the checkpoint and print "
                         "its FP top-1 on the test images (compare with brecq eval)")
    ap.add_argument("--table-only", metavar="DIR", default=None,
                    help="no runs: read the authors' results for the records from DIR and print the table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if (args.rounding_out or args.rounding_from) and len(args.records) != 1:
        ap.error("--rounding-out and --rounding-from take one record")
    if args.rounding_out and args.rounding_from:
        ap.error("--rounding-out and --rounding-from: give one of them (the rounding written would be the one read)")
    if args.rounding_from and args.nearest:
        ap.error("--rounding-from with --nearest: the nearest run has no weight stage to replace")
    recs = []
    for p in args.records:
        with open(p) as f:
            r = json.load(f)
        r["_path"] = p
        recs.append(r)

    pairs = []
    if args.table_only:
        for r in recs:
            with open(os.path.join(args.table_only, os.path.basename(r["_path"]))) as f:
                a = json.load(f)
            if a["result"].get("calib_indices_sha256") != indices_digest(r["calib_indices"]):
                raise SystemExit("%s: the authors' run used other calibration images than this record" % r["_path"])
            o, ao = r["options"], a["result"]
            if (o["WBits"], o["ABits"], o["WeightIters"]) != (ao["wbits"], ao["abits"], ao["weight_iters"]) or \
                    (o["ABits"] < 32 and o["ActIters"] != ao["act_iters"]):
                raise SystemExit("%s: bits or iterations differ from the authors' run" % r["_path"])
            pairs.append((r, a["result"], a.get("nearest")))
        print(table(pairs))
        return

    if not args.authors_repo:
        ap.error("--authors-repo is required (a local clone of github.com/yhhhli/BRECQ)")
    authors = import_authors(os.path.abspath(args.authors_repo))
    if args.check:
        try:
            r = recs[0]
            (trX, trY, teX, teY), norm = load_data(r.get("data", "fashion-mnist"))
            model = args.model or r.get("checkpoint", "models/resnet20-fmnist.safetensors")
            m = re.match(r"resnet(\d+)", r.get("model", "resnet20"))
            tensors, meta = read_safetensors(model)
            cnn = build_resnet(authors["resnet"], args.depth or (int(m.group(1)) if m else 20), args.width, 1, 10)
            load_weights(cnn, tensors)
            t0 = time.time()
            acc = top1(cnn, norm(teX), torch.from_numpy(teY.astype(np.int64)))
            print("%s: FP top-1 %.2f %% in PyTorch (%.0f s); the record says %s, the checkpoint's metadata %s" % (
                model, acc, time.time() - t0, r.get("fp_top1", "-"), meta.get("test_top1", "-")))
        finally:
            shutil.rmtree(authors["tmp"], ignore_errors=True)
        return
    print("authors' code: %s (commit %s), patched: %s" % (args.authors_repo, authors["commit"],
                                                            "; ".join(authors["patched"])), flush=True)
    data_name = recs[0].get("data", "fashion-mnist")
    arrays, norm = load_data(data_name)
    data = (arrays, norm)
    try:
        for r in recs:
            a_args = argparse.Namespace(**vars(args))
            if a_args.model is None:
                a_args.model = r.get("checkpoint", "models/resnet20-fmnist.safetensors")
            if a_args.depth is None:
                m = re.match(r"resnet(\d+)", r.get("model", "resnet20"))
                a_args.depth = int(m.group(1)) if m else 20
            print("== %s: W%dA%d %s %s, %d/%d iterations, %d calibration images, seed %s" % (
                r["_path"], r["options"]["WBits"], r["options"]["ABits"], r["options"]["Method"],
                r["options"].get("Granularity"), r["options"]["WeightIters"], r["options"]["ActIters"],
                len(r["calib_indices"]), r["options"].get("Seed")), flush=True)
            a = run_one(r, a_args, authors, data)
            print("   authors: FP %.2f, top-1 %.2f (%.0f s)" % (a["fp_top1"], a["quant_top1"], a["seconds_total"]),
                  flush=True)
            an = None
            if args.nearest and r["options"]["Method"] != "nearest":
                an = run_one(nearest_record(r), a_args, authors, data)
                print("   authors nearest: %.2f" % an["quant_top1"], flush=True)
            pairs.append((r, a, an))
            if args.out_dir:
                os.makedirs(args.out_dir, exist_ok=True)
                with open(os.path.join(args.out_dir, os.path.basename(r["_path"])), "w") as f:
                    json.dump({"result": a, "nearest": an}, f, indent=1)
    finally:
        shutil.rmtree(authors["tmp"], ignore_errors=True)
    print()
    print(table(pairs))


if __name__ == "__main__":
    main()
