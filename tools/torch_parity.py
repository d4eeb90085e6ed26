#!/usr/bin/python3
"""Train the same network in nncl and in PyTorch and compare them.

Usage: /usr/bin/python3 tools/torch_parity.py NNCL_BINARY SPEC OPTIMIZER BACKEND [WORKDIR]

  NNCL_BINARY  the nncl tool (build/tools/nncl/nncl)
  SPEC         a model spec (tests/data/parity_*.spec): conv, pooling, batch
               norm, linear and activations, no dropout (its masks come from
               nncl's own generator)
  OPTIMIZER    sgd (momentum 0.9, lr 0.05), adamw (lr 0.01, weight decay 0.01),
               nesterov (SGD, lr 0.05, Nesterov momentum 0.9, weight decay 1e-3,
               gradients clipped to norm 1, cosine schedule over the 20 steps)
               or adam (lr 0.01, L2 weight decay 0.01, step schedule: x0.5
               every 5 steps)
  BACKEND      cpu or opencl

The script builds the torch.nn.Sequential of the spec, initialises it from a
fixed seed and writes its state_dict as safetensors; nncl loads those initial
weights (--init) and, like the PyTorch side, uses the inputs as they are
(--no-normalize). Both then train for 20 steps of batch 16 on the same
seeded random data, in the same order (no shuffling). The test passes when
every step's loss agrees within 1e-5 relative and every final weight within
rtol 1e-4, atol 1e-5 (torch.allclose); it prints the largest differences.

Needs Debian's python3-torch (PyTorch 1.13) and numpy. safetensors files are
read and written here directly (the format is 8 bytes of header length, a
JSON header, and the raw little-endian data).
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:  # CTest shows exit code 77 as "skipped"; CI sets NNCL_REQUIRE_TORCH=1
    print(f"SKIPPED: {e} (install Debian's python3-torch)")
    sys.exit(1 if os.environ.get("NNCL_REQUIRE_TORCH") == "1" else 77)

STEPS, BATCH, CLASSES = 20, 16, 10
LOSS_RTOL, W_RTOL, W_ATOL = 1e-5, 1e-4, 1e-5

DTYPES = {torch.float32: ("F32", np.float32), torch.int64: ("I64", np.int64)}
FROM_ST = {"F32": np.float32, "I64": np.int64}


def save_safetensors(path, tensors):
    """Writes a dict of name -> tensor as a safetensors file."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        code, npt = DTYPES[t.dtype]
        data = t.detach().cpu().numpy().astype(npt).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    """Reads a safetensors file into a dict of name -> numpy array."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + end], dtype=FROM_ST[e["dtype"]]).reshape(e["shape"])
    return out


def build(spec_path):
    """The torch.nn.Sequential of a spec, and its input shape (the subset the parity specs use)."""
    layers, shape = [], None
    for raw in open(spec_path):
        words = raw.split("#")[0].split()
        if not words:
            continue
        name, pos = words[0], [w for w in words[1:] if "=" not in w]
        opt = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        if name == "input":
            shape = [int(v) for v in pos]
            cur = list(shape)
            continue
        if name == "loss":
            continue
        if name == "conv2d":
            k, p = int(opt["kernel"]), int(opt.get("padding", 0))
            m = torch.nn.Conv2d(cur[0], int(pos[0]), k, stride=int(opt.get("stride", 1)), padding=p,
                                bias=opt.get("bias", "1") == "1")
        elif name == "linear":
            m = torch.nn.Linear(cur[-1], int(pos[0]), bias=opt.get("bias", "1") == "1")
        elif name in ("maxpool2d", "avgpool2d"):
            cls = torch.nn.MaxPool2d if name == "maxpool2d" else torch.nn.AvgPool2d
            m = cls(int(pos[0]), stride=int(opt.get("stride", pos[0])), padding=int(opt.get("padding", 0)))
        elif name == "batchnorm2d":
            m = torch.nn.BatchNorm2d(cur[0])
        elif name == "batchnorm1d":
            m = torch.nn.BatchNorm1d(cur[0])
        elif name == "flatten":
            m = torch.nn.Flatten()
        else:
            m = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU, "sigmoid": torch.nn.Sigmoid,
                 "silu": torch.nn.SiLU, "elu": torch.nn.ELU}[name]()
        layers.append(m)
        with torch.no_grad():
            cur = list(torch.nn.Sequential(*layers).eval()(torch.zeros(2, *shape)).shape[1:])
    return torch.nn.Sequential(*layers), shape


def main():
    if len(sys.argv) < 5:
        print(__doc__)
        return 2
    binary, spec, optimizer, backend = sys.argv[1:5]
    if backend == "opencl":
        devices = subprocess.run([binary, "devices"], capture_output=True, text=True)
        if devices.returncode != 0:
            print(devices.stdout, devices.stderr)
            print("FAIL: nncl devices exited with", devices.returncode)
            return 1
        if not re.search(r"^\d+:\d+ ", devices.stdout, re.M):
            print("SKIPPED: no OpenCL device (nncl devices lists none)")  # CI sets NNCL_REQUIRE_OPENCL=1
            return 1 if os.environ.get("NNCL_REQUIRE_OPENCL") == "1" else 77
    work = sys.argv[5] if len(sys.argv) > 5 else tempfile.mkdtemp(prefix="nncl-parity-")
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    model, shape = build(spec)

    rng = np.random.default_rng(99)
    x = rng.standard_normal((STEPS * BATCH, *shape)).astype(np.float32)
    y = rng.integers(0, CLASSES, STEPS * BATCH).astype(np.int64)
    np.save(os.path.join(work, "x.npy"), x)
    np.save(os.path.join(work, "y.npy"), y)
    init = os.path.join(work, "init.safetensors")
    save_safetensors(init, model.state_dict())

    sched, clip = None, None
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        flags = ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"]
    elif optimizer == "nesterov":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
        sched, clip = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS), 1.0
        flags = ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov", "--weight-decay", "1e-3",
                 "--clip", "1", "--schedule", "cosine", "--t-max", str(STEPS)]
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        flags = ["--optimizer", "adam", "--lr", "0.01", "--weight-decay", "0.01", "--schedule", "step",
                 "--step-size", "5", "--gamma", "0.5"]
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
        flags = ["--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.01"]
    else:
        print(f"unknown optimizer configuration {optimizer}")
        return 2

    out, log = os.path.join(work, "nncl.safetensors"), os.path.join(work, "steps.txt")
    cmd = [binary, "train", "--spec", spec, "--backend", backend, "--train-x", os.path.join(work, "x.npy"),
           "--train-y", os.path.join(work, "y.npy"), "--test-x", os.path.join(work, "x.npy"), "--test-y",
           os.path.join(work, "y.npy"), "--batch", str(BATCH), "--epochs", "1", "--no-shuffle", "--no-normalize", "--init", init,
           "--save", out, "--step-log", log] + flags
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout, run.stderr)
        print("FAIL: nncl train exited with", run.returncode)
        return 1

    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    torch_losses = []
    for s in range(STEPS):
        xb = torch.from_numpy(x[s * BATCH:(s + 1) * BATCH])
        yb = torch.from_numpy(y[s * BATCH:(s + 1) * BATCH])
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if sched is not None:
            sched.step()
        torch_losses.append(loss.item())

    nncl_losses = [float(line.split()[1]) for line in open(log)]
    failures = 0
    worst_loss = max(abs(a - b) / abs(b) for a, b in zip(nncl_losses, torch_losses))
    if len(nncl_losses) != STEPS or worst_loss > LOSS_RTOL:
        failures += 1
        for s, (a, b) in enumerate(zip(nncl_losses, torch_losses)):
            print(f"step {s + 1}: nncl {a:.9g} torch {b:.9g} rel {abs(a - b) / abs(b):.2e}")
    weights = load_safetensors(out)
    worst_w = 0.0
    for name, t in model.state_dict().items():
        want = t.detach().numpy()
        got = weights.get(name)
        if got is None or got.shape != want.shape:
            print(f"FAIL: {name} missing or of the wrong shape")
            failures += 1
            continue
        if name.endswith("num_batches_tracked"):
            if int(got) != int(want):
                print(f"FAIL: {name} = {int(got)}, torch {int(want)}")
                failures += 1
            continue
        excess = np.abs(got - want) - (W_ATOL + W_RTOL * np.abs(want))
        worst_w = max(worst_w, float(np.max(np.abs(got - want) / (W_ATOL + W_RTOL * np.abs(want)))))
        if np.any(excess > 0):
            print(f"FAIL: {name}: max |nncl - torch| = {np.max(np.abs(got - want)):.3g}")
            failures += 1
    print(f"{os.path.basename(spec)} {optimizer} {backend}: {STEPS} steps, worst loss difference {worst_loss:.2e} "
          f"relative (limit {LOSS_RTOL:g}), worst weight difference {worst_w:.3f} of the tolerance "
          f"(rtol {W_RTOL:g}, atol {W_ATOL:g}), torch {torch.__version__}")
    print("PASS" if failures == 0 else "FAIL")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
