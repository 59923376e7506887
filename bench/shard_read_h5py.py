#!/usr/bin/python3
"""Images per second when h5py reads a shard's /images one image at a time
(ds[i]), at h5py's default chunk cache and at a larger one (rdcc_nbytes).
Usage: shard_read_h5py.py LABEL=SHARD... [--cache MiB] [--runs N]
Prints one row per shard and cache: median of N runs (each a fresh open)."""
import statistics
import sys
import time

import h5py


def rate(path, rdcc):
    kw = {} if rdcc is None else {"rdcc_nbytes": rdcc, "rdcc_nslots": 10007}
    with h5py.File(path, "r", **kw) as f:
        ds = f["images"]
        n = ds.shape[0]
        t = time.perf_counter()
        for i in range(n):
            ds[i]
        return n / (time.perf_counter() - t), ds.chunks


def main(argv):
    big, runs, shards = 64, 3, []
    i = 0
    while i < len(argv):
        if argv[i] == "--cache":
            big, i = int(argv[i + 1]), i + 2
        elif argv[i] == "--runs":
            runs, i = int(argv[i + 1]), i + 2
        else:
            shards.append(argv[i].split("=", 1))
            i += 1
    print(f"{'shard':<14} {'chunk':<22} {'chunk MiB':>9} {'cache':>12} {'img/s (median of %d)' % runs:>22}")
    for label, path in shards:
        for rdcc, name in ((None, "default 1MiB"), (big << 20, f"{big} MiB")):
            rates = []
            for _ in range(runs):
                r, chunks = rate(path, rdcc)
                rates.append(r)
            mib = chunks[0] * chunks[1] * chunks[2] * chunks[3] / 2**20
            print(f"{label:<14} {str(chunks):<22} {mib:>9.2f} {name:>12} {statistics.median(rates):>22,.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
