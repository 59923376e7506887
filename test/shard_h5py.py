"""Reads the pattern shards written by `test_shard_store --write-pattern DIR`
with h5py and compares every dataset and attribute against the documented
pattern (see test/test_shard_store.c). Run with HDF5_PLUGIN_PATH set to the
folder holding libh5zstd.so. With --expect-no-plugin, instead checks that
/images cannot be read (the filter is missing). Exit 0 = all checks passed."""
import os
import sys

import h5py
import numpy as np

N, H, W = 70, 4, 5
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def expected_images():
    i, y, x, c = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return ((7 * i + 11 * y + 13 * x + 17 * c) % 256).astype(np.uint8)


def attr_str(f, name):
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def check_common(f, path, schema):
    check(attr_str(f, "schema") == schema, f"{path}: schema {f.attrs['schema']!r}")
    check(int(f.attrs["version"]) == 1, f"{path}: version")
    check(int(f.attrs["height"]) == H and int(f.attrs["width"]) == W, f"{path}: size attributes")
    images = f["images"]
    check(images.dtype == np.uint8 and images.shape == (N, H, W, 3), f"{path}: /images {images.dtype} {images.shape}")
    check(images.chunks == (32, H, W, 3), f"{path}: /images chunks {images.chunks}")
    check(32015 in images._filters or "32015" in images._filters, f"{path}: filters {images._filters}")
    check(np.array_equal(images[...], expected_images()), f"{path}: /images values")
    ids = f["ids"][...]
    check(ids.dtype == np.uint64 and np.array_equal(ids, 1000 + 3 * np.arange(N, dtype=np.uint64)), f"{path}: /ids")
    flat = f["sources"][...].tobytes()
    so = f["source_offsets"][...]
    sources = [flat[so[k]:so[k + 1]].decode() for k in range(N)]
    check(sources == [f"src-{k}" for k in range(N)], f"{path}: /sources")


def main():
    args = sys.argv[1:]
    no_plugin = args and args[0] == "--expect-no-plugin"
    d = args[-1]
    if no_plugin:
        with h5py.File(os.path.join(d, "images.h5"), "r") as f:
            try:
                f["images"][0]
                print("FAIL: /images was readable without the plugin", file=sys.stderr)
                return 1
            except (OSError, ValueError) as e:
                print("as expected without the plugin:", str(e).splitlines()[0])
                return 0
    p = os.path.join(d, "images.h5")
    with h5py.File(p, "r") as f:
        check_common(f, p, "nboost.images")
        check(int(f.attrs["has_objects"]) == 0 and "objects" not in f, f"{p}: objects")
        check("tokens" not in f, f"{p}: image shard has /tokens")
    p = os.path.join(d, "captions.h5")
    with h5py.File(p, "r") as f:
        check_common(f, p, "nboost.captions")
        check(attr_str(f, "origin") == "pseudo", f"{p}: origin")
        check(attr_str(f, "teacher_digest") == "0123456789abcdef", f"{p}: teacher_digest")
        check(attr_str(f, "vocab_digest") == "fedcba9876543210", f"{p}: vocab_digest")
        check(int(f.attrs["round"]) == 2 and int(f.attrs["K"]) == 4 and int(f.attrs["vote"]) == 3, f"{p}: round/K/vote")
        check(abs(float(f.attrs["sigma"]) - 0.3) < 1e-6, f"{p}: sigma")
        off = f["offsets"][...]
        tok = f["tokens"][...]
        check(off.dtype == np.uint64 and off.shape == (N + 1,), f"{p}: /offsets {off.dtype} {off.shape}")
        check(tok.dtype == np.uint16, f"{p}: /tokens dtype {tok.dtype}")
        want_off = np.concatenate([[0], np.cumsum([k % 12 + 2 for k in range(N)])]).astype(np.uint64)
        check(np.array_equal(off, want_off), f"{p}: /offsets values")
        want_tok = np.concatenate([[(k + j) % 27 for j in range(k % 12 + 2)] for k in range(N)]).astype(np.uint16)
        check(np.array_equal(tok, want_tok), f"{p}: /tokens values")
        score = f["score"][...]
        check(score.dtype == np.float32 and np.array_equal(score, (np.arange(N) / np.float32(100)).astype(np.float32)),
              f"{p}: /score")
        obj = f["objects"][...]
        want_obj = ((np.arange(N)[:, None] + np.arange(9)[None, :]) % 97).astype(np.uint8)
        check(obj.dtype == np.uint8 and np.array_equal(obj, want_obj), f"{p}: /objects")
    print(f"shard_h5py: {'all checks passed' if not failures else str(len(failures)) + ' checks failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
