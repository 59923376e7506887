#!/usr/bin/python3
"""PyTorch reference of the nboost captioner (model/vlm.c, docs/model.md).

Usage: torch_ref.py DIR
       torch_ref.py --dpo DIR   (the DPO objective, trainer/dpo.h; see dpo_main)

DIR holds what test/test_model_torch.c wrote:
  config.txt   the vlm_config fields as `key value` lines, plus B, T, sigma, steps
  tensors.txt  one line per parameter tensor: name offset numel decay dim0 [dim1]
  params.bin   the initial parameters, float32, in tensors.txt order
  images.bin   uint8 [B, S, S, 3]; inputs.bin, targets.bin uint16 [B, T]
  eps.bin      float32 [B, nv, dec_dim]: the N(0,1) NoiseBoost draws from C
and this script writes, all little-endian float32/float64 raw arrays:
  logits.bin   float32 [B, T, V] (no noise)
  loss.bin     float64 [2]: mean token loss without and with noise
  grads.bin    float32, parameter layout: gradient of the mean loss, no noise
  grads_noise.bin  the same with noise
  steps.bin    float64 [steps]: the mean loss before each AdamW step
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_config(d):
    cfg = {}
    with open(os.path.join(d, "config.txt")) as f:
        for line in f:
            k, v = line.split()
            cfg[k] = float(v) if k == "sigma" else int(v)
    return cfg


def read_tensors(d, flat):
    names, tensors, decay = [], {}, {}
    with open(os.path.join(d, "tensors.txt")) as f:
        for line in f:
            parts = line.split()
            name, off, numel, dec = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
            shape = [int(x) for x in parts[4:]]
            t = torch.tensor(flat[off:off + numel].reshape(shape), dtype=torch.float32, requires_grad=True)
            names.append(name)
            tensors[name] = t
            decay[name] = dec
    return names, tensors, decay


def block(p, pre, x, nh, causal):
    B, T, C = x.shape
    hs = C // nh
    h = F.layer_norm(x, (C,), p[pre + "ln1.w"], p[pre + "ln1.b"], 1e-5)
    qkv = F.linear(h, p[pre + "attn.qkv.w"], p[pre + "attn.qkv.b"])
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, nh, hs).transpose(1, 2)
    k = k.view(B, T, nh, hs).transpose(1, 2)
    v = v.view(B, T, nh, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
    if causal:
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    x = x + F.linear(y, p[pre + "attn.proj.w"], p[pre + "attn.proj.b"])
    h = F.layer_norm(x, (C,), p[pre + "ln2.w"], p[pre + "ln2.b"], 1e-5)
    h = F.gelu(F.linear(h, p[pre + "mlp.fc1.w"], p[pre + "mlp.fc1.b"]), approximate="tanh")
    return x + F.linear(h, p[pre + "mlp.fc2.w"], p[pre + "mlp.fc2.b"])


def forward(cfg, p, images, inputs, eps, sigma):
    B, S = images.shape[0], cfg["image_size"]
    P = cfg["patch"]
    n = S // P
    x = images.float() / 255.0 - 0.5
    # patches in row-major order, each flattened as (row, column, channel)
    x = x.view(B, n, P, n, P, 3).permute(0, 1, 3, 2, 4, 5).reshape(B, n * n, P * P * 3)
    x = F.linear(x, p["enc.patch.w"], p["enc.patch.b"]) + p["enc.pos"]
    for i in range(cfg["enc_layers"]):
        x = block(p, "enc.%d." % i, x, cfg["enc_heads"], False)
    x = F.layer_norm(x, (cfg["enc_dim"],), p["enc.ln_f.w"], p["enc.ln_f.b"], 1e-5)
    v = F.linear(F.gelu(F.linear(x, p["proj.fc1.w"], p["proj.fc1.b"]), approximate="tanh"),
                 p["proj.fc2.w"], p["proj.fc2.b"])
    if sigma > 0:
        # NoiseBoost: per-token population std, no gradient through it
        v = v + sigma * v.std(dim=-1, unbiased=False, keepdim=True).detach() * eps
    T = inputs.shape[1]
    nv = v.shape[1]
    x = torch.cat([v, p["dec.tok_emb"][inputs]], dim=1) + p["dec.pos"][: nv + T]
    for i in range(cfg["dec_layers"]):
        x = block(p, "dec.%d." % i, x, cfg["dec_heads"], True)
    x = F.layer_norm(x[:, nv:], (cfg["dec_dim"],), p["dec.ln_f.w"], p["dec.ln_f.b"], 1e-5)
    return F.linear(x, p["head.w"], p["head.b"])


def mean_loss(logits, targets):
    V = logits.shape[-1]
    n = (targets != 0).sum()
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=0, reduction="sum") / n


def grads_flat(names, p, total):
    out = np.zeros(total, dtype=np.float32)
    off = 0
    for nm in names:
        g = p[nm].grad.detach().numpy().reshape(-1)
        out[off:off + g.size] = g
        off += g.size
    return out


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    cfg = read_config(d)
    B, T, S = cfg["B"], cfg["T"], cfg["image_size"]
    flat = np.fromfile(os.path.join(d, "params.bin"), dtype="<f4")
    names, p, decay = read_tensors(d, flat)
    images = torch.from_numpy(np.fromfile(os.path.join(d, "images.bin"), dtype=np.uint8).reshape(B, S, S, 3))
    inputs = torch.from_numpy(np.fromfile(os.path.join(d, "inputs.bin"), dtype="<u2").astype(np.int64).reshape(B, T))
    targets = torch.from_numpy(np.fromfile(os.path.join(d, "targets.bin"), dtype="<u2").astype(np.int64).reshape(B, T))
    nv = (S // cfg["patch"]) ** 2
    eps = torch.from_numpy(np.fromfile(os.path.join(d, "eps.bin"), dtype="<f4").reshape(B, nv, cfg["dec_dim"]))

    logits = forward(cfg, p, images, inputs, eps, 0.0)
    loss = mean_loss(logits, targets)
    loss.backward()
    logits.detach().numpy().astype("<f4").tofile(os.path.join(d, "logits.bin"))
    grads_flat(names, p, flat.size).tofile(os.path.join(d, "grads.bin"))
    for t in p.values():
        t.grad = None
    loss_n = mean_loss(forward(cfg, p, images, inputs, eps, cfg["sigma"]), targets)
    loss_n.backward()
    grads_flat(names, p, flat.size).tofile(os.path.join(d, "grads_noise.bin"))
    np.array([loss.item(), loss_n.item()], dtype="<f8").tofile(os.path.join(d, "loss.bin"))

    groups = [{"params": [p[n] for n in names if decay[n]], "weight_decay": 0.05},
              {"params": [p[n] for n in names if not decay[n]], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for _ in range(cfg["steps"]):
        opt.zero_grad()
        l = mean_loss(forward(cfg, p, images, inputs, eps, 0.0), targets)
        l.backward()
        losses.append(l.item())
        opt.step()
    np.array(losses, dtype="<f8").tofile(os.path.join(d, "steps.bin"))


def seq_nll(logits, targets):
    """Per row: the summed token cross-entropy (pad targets, 0, count nothing)."""
    B, T, V = logits.shape
    ce = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=0, reduction="none")
    return ce.view(B, T).sum(dim=1)


def dpo_main(d):
    """DIR holds what test/test_dpo_torch.c wrote: config.txt (the model
    keys, B = rows = 2 * pairs, T, sigma, beta, sft_weight), tensors.txt,
    params.bin (the policy), ref_params.bin (the reference), images.bin,
    inputs.bin, targets.bin for the rows (chosen rows first, then the
    rejected rows of the same images) and eps.bin (each row's draws). For
    each noise mode (none, chosen, both) it writes dpo_loss_MODE.bin
    (float64 [4]: objective, sum of -log sigmoid z, sum of z, sum of chosen
    nll) and dpo_grads_MODE.bin (float32, parameter layout)."""
    torch.set_num_threads(1)
    cfg = {}
    with open(os.path.join(d, "config.txt")) as f:
        for line in f:
            k, v = line.split()
            cfg[k] = float(v) if k in ("sigma", "beta", "sft_weight") else int(v)
    B, T, S = cfg["B"], cfg["T"], cfg["image_size"]
    n = B // 2
    flat = np.fromfile(os.path.join(d, "params.bin"), dtype="<f4")
    names, p, _ = read_tensors(d, flat)
    _, ref, _ = read_tensors(d, np.fromfile(os.path.join(d, "ref_params.bin"), dtype="<f4"))
    images = torch.from_numpy(np.fromfile(os.path.join(d, "images.bin"), dtype=np.uint8).reshape(B, S, S, 3))
    inputs = torch.from_numpy(np.fromfile(os.path.join(d, "inputs.bin"), dtype="<u2").astype(np.int64).reshape(B, T))
    targets = torch.from_numpy(np.fromfile(os.path.join(d, "targets.bin"), dtype="<u2").astype(np.int64).reshape(B, T))
    nv = (S // cfg["patch"]) ** 2
    eps = torch.from_numpy(np.fromfile(os.path.join(d, "eps.bin"), dtype="<f4").reshape(B, nv, cfg["dec_dim"]))
    beta, sft_w = cfg["beta"], cfg["sft_weight"]
    sft_scale = 1.0 / float((targets[:n] != 0).sum())
    with torch.no_grad():  # the reference: no noise, no gradient
        ref_nll = seq_nll(forward(cfg, ref, images, inputs, eps, 0.0), targets).double()
    for mode in ("none", "chosen", "both"):
        for t in p.values():
            t.grad = None
        sigma = 0.0 if mode == "none" else cfg["sigma"]
        e = eps.clone()
        if mode == "chosen":
            e[n:] = 0.0  # the rejected rows see clean visual tokens
        nll = seq_nll(forward(cfg, p, images, inputs, e, sigma), targets).double()
        z = beta * ((ref_nll[:n] - nll[:n]) - (ref_nll[n:] - nll[n:]))
        terms = -F.logsigmoid(z)
        loss = terms.sum() / n + sft_w * sft_scale * nll[:n].sum()
        loss.backward()
        np.array([loss.item(), terms.sum().item(), z.sum().item(), nll[:n].sum().item()],
                 dtype="<f8").tofile(os.path.join(d, "dpo_loss_%s.bin" % mode))
        grads_flat(names, p, flat.size).tofile(os.path.join(d, "dpo_grads_%s.bin" % mode))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--dpo":
        dpo_main(sys.argv[2])
    else:
        main()
