"""Reference PNGs for test_png_reference: every colour type at bit depths
1..16, interlaced (Adam7) and not, odd sizes, written by a small encoder
here (PIL cannot write interlaced or 16-bit RGB PNGs), each with the RGB
pixels nboost must decode it to.

usage: png_reference.py OUTDIR
Writes OUTDIR/NAME.png, OUTDIR/NAME.rgb (height x width x 3 bytes) and
OUTDIR/cases.tsv (NAME, width, height). Exits 1 when Pillow, the reference
decoder, disagrees with the source pixels: the encoder is then wrong, not
the decoder under test.

Expected pixels:
  - 8-bit and below: Pillow's decode (palette and gray expanded to RGB,
    1/2/4-bit gray scaled to 0..255); it must equal the source exactly.
  - 16-bit: v -> (v * 255 + 32895) >> 16, i.e. v / 257 rounded to nearest
    (libpng's png_set_scale_16); Pillow keeps only the high byte (v >> 8),
    so it is checked to be within 1, and the 16-bit gray values exactly.
  - alpha (any value; tRNS too): composited on black in the stored values,
    c * a / 255 rounded, which is what Pillow's alpha_composite over opaque
    black gives (the 8-bit expectations are that, exactly); for 16-bit
    colour and alpha are each scaled to 8 bits first.
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pack_rows(a, depth):
    """Rows of a (h x w x channels samples) as PNG scanlines, filter 0."""
    h, w, c = a.shape
    out = []
    for y in range(h):
        if depth == 16:
            row = a[y].astype(">u2").tobytes()
        elif depth == 8:
            row = a[y].astype("u1").tobytes()
        else:  # 1, 2, 4 bits, one channel
            per = 8 // depth
            v = a[y, :, 0].astype(int)
            v = np.concatenate([v, np.zeros((-w) % per, int)])
            row = bytes(int(sum(int(x) << (8 - depth * (k + 1)) for k, x in enumerate(v[i:i + per])))
                        for i in range(0, len(v), per))
        out.append(b"\0" + row)
    return b"".join(out)


def png(a, depth, ctype, interlace, plte=None, trns=None):
    h, w = a.shape[:2]
    if interlace:
        data = b"".join(pack_rows(a[y0::dy, x0::dx], depth) for x0, y0, dx, dy in ADAM7
                        if a[y0::dy, x0::dx].size)
    else:
        data = pack_rows(a, depth)
    s = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    if plte is not None:
        s += chunk(b"PLTE", plte.astype("u1").tobytes())
    if trns is not None:
        s += chunk(b"tRNS", trns.astype("u1").tobytes())
    return s + chunk(b"IDAT", zlib.compress(data, 6)) + chunk(b"IEND", b"")


def scale16(v):
    return ((v.astype(np.int64) * 255 + 32895) >> 16).astype(np.uint8)


def on_black(rgba):
    """Pillow's composite of an RGBA image over opaque black, as RGB."""
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"))


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(13)
    cases = []
    bad = []

    def emit(name, data, want):
        open(os.path.join(out, name + ".png"), "wb").write(data)
        h, w = want.shape[:2]
        open(os.path.join(out, name + ".rgb"), "wb").write(np.ascontiguousarray(want, np.uint8).tobytes())
        cases.append((name, w, h))

    def pil(name):
        return Image.open(os.path.join(out, name + ".png"))

    for w, h in [(37, 29), (3, 5), (1, 1)]:
        for il in (0, 1):
            tag = f"{w}x{h}{'_i' if il else ''}"
            # gray at 1, 2, 4, 8 bits
            for depth in (1, 2, 4, 8):
                g = rng.integers(0, 1 << depth, (h, w, 1))
                name = f"gray{depth}_{tag}"
                open(os.path.join(out, name + ".png"), "wb").write(png(g, depth, 0, il))
                ref = np.asarray(pil(name).convert("L"))
                src = (g[:, :, 0] * 255 // ((1 << depth) - 1)).astype(np.uint8)
                if not np.array_equal(ref, src):
                    bad.append(name)
                emit(name, png(g, depth, 0, il), np.repeat(ref[:, :, None], 3, axis=2))
            # gray 16
            g = rng.integers(0, 65536, (h, w, 1))
            name = f"gray16_{tag}"
            emit(name, png(g, 16, 0, il), np.repeat(scale16(g), 3, axis=2))
            if not np.array_equal(np.asarray(pil(name)).astype(int), g[:, :, 0]):
                bad.append(name)
            # RGB 8 / 16
            c = rng.integers(0, 256, (h, w, 3))
            name = f"rgb8_{tag}"
            open(os.path.join(out, name + ".png"), "wb").write(png(c, 8, 2, il))
            ref = np.asarray(pil(name).convert("RGB"))
            if not np.array_equal(ref, c):
                bad.append(name)
            emit(name, png(c, 8, 2, il), ref)
            c = rng.integers(0, 65536, (h, w, 3))
            name = f"rgb16_{tag}"
            emit(name, png(c, 16, 2, il), scale16(c))
            if np.abs(np.asarray(pil(name).convert("RGB")).astype(int) - scale16(c)).max() > 1:
                bad.append(name)
            # gray+alpha and RGBA, 8 and 16 bits, any alpha
            for depth, ctype, nc in ((8, 4, 1), (16, 4, 1), (8, 6, 3), (16, 6, 3)):
                top = (1 << depth) - 1
                col = rng.integers(0, top + 1, (h, w, nc))
                alpha = rng.integers(0, top + 1, (h, w, 1))
                alpha[0, 0] = 0
                alpha[-1, -1] = top
                a = np.concatenate([col, alpha], axis=2)
                kind = "graya" if nc == 1 else "rgba"
                name = f"{kind}{depth}_{tag}"
                open(os.path.join(out, name + ".png"), "wb").write(png(a, depth, ctype, il))
                if depth == 8:
                    want = on_black(pil(name).convert("RGBA"))
                    src = (np.repeat(col, 3 // nc, axis=2) * alpha + 127) // 255
                    if not np.array_equal(want, src):
                        bad.append(name)
                else:
                    col8, a8 = scale16(col).astype(int), scale16(alpha).astype(int)
                    want = ((np.repeat(col8, 3 // nc, axis=2) * a8 + 127) // 255).astype(np.uint8)
                emit(name, png(a, depth, ctype, il), want)
            # palette at 4 and 8 bits, with and without tRNS (any alpha)
            for depth in (4, 8):
                for with_trns in (0, 1):
                    n = 1 << depth
                    plte = rng.integers(0, 256, (n, 3))
                    trns = rng.integers(0, 256, n) if with_trns else None
                    idx = rng.integers(0, n, (h, w, 1))
                    name = f"pal{depth}{'t' if with_trns else ''}_{tag}"
                    open(os.path.join(out, name + ".png"), "wb").write(png(idx, depth, 3, il, plte, trns))
                    want = on_black(pil(name).convert("RGBA"))
                    alpha = trns[idx] if with_trns else 255
                    if not np.array_equal(want, (plte[idx[:, :, 0]] * alpha + 127) // 255):
                        bad.append(name)
                    emit(name, png(idx, depth, 3, il, plte, trns), want)
    with open(os.path.join(out, "cases.tsv"), "w") as f:
        for name, w, h in cases:
            f.write(f"{name}\t{w}\t{h}\n")
    if bad:
        print("png_reference: Pillow disagrees with the source of: " + " ".join(bad), file=sys.stderr)
        sys.exit(1)


main()
