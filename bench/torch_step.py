#!/usr/bin/python3
"""PyTorch training step (forward + backward, batch 64, full-length captions)
of the same model as model/vlm.c, for bench/bench_train_step.c.
Prints `step_ms <median>` and, with --verbose, the torch build config.
Uses 2 threads, float32, the model built in test/torch_ref.py."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
import torch_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.verbose:
        print(torch.__config__.show())
    cfg = dict(image_size=48, patch=8, enc_dim=128, enc_layers=2, enc_heads=4, dec_dim=128, dec_layers=4,
               dec_heads=4, mlp_ratio=4, vocab=27, max_text=41)
    B, T, nv, D, E, H = 64, 41, 36, 128, 128, 512
    shapes = {"enc.patch.w": (E, 192), "enc.patch.b": (E,), "enc.pos": (nv, E)}
    for stack, n, C in (("enc", 2, E), ("dec", 4, D)):
        for i in range(n):
            p = "%s.%d." % (stack, i)
            shapes.update({p + "ln1.w": (C,), p + "ln1.b": (C,), p + "attn.qkv.w": (3 * C, C),
                           p + "attn.qkv.b": (3 * C,), p + "attn.proj.w": (C, C), p + "attn.proj.b": (C,),
                           p + "ln2.w": (C,), p + "ln2.b": (C,), p + "mlp.fc1.w": (4 * C, C),
                           p + "mlp.fc1.b": (4 * C,), p + "mlp.fc2.w": (C, 4 * C), p + "mlp.fc2.b": (C,)})
        if stack == "enc":
            shapes.update({"enc.ln_f.w": (E,), "enc.ln_f.b": (E,), "proj.fc1.w": (D, E), "proj.fc1.b": (D,),
                           "proj.fc2.w": (D, D), "proj.fc2.b": (D,), "dec.tok_emb": (27, D),
                           "dec.pos": (nv + T, D)})
    shapes.update({"dec.ln_f.w": (D,), "dec.ln_f.b": (D,), "head.w": (27, D), "head.b": (27,)})
    p = {k: (torch.randn(*s) * 0.02).requires_grad_() for k, s in shapes.items()}
    images = torch.randint(0, 256, (B, 48, 48, 3), dtype=torch.uint8)
    inputs = torch.randint(4, 27, (B, T))
    targets = torch.randint(4, 27, (B, T))
    eps = torch.randn(B, nv, D)
    times = []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        for t in p.values():
            t.grad = None
        loss = torch_ref.mean_loss(torch_ref.forward(cfg, p, images, inputs, eps, 0.3), targets)
        loss.backward()
        if s:
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print("step_ms %.3f" % times[len(times) // 2])


if __name__ == "__main__":
    main()
