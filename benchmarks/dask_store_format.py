"""Zarr or a Parquet dataset for the chunked instance store: write, block read, random rows.

    python benchmarks/dask_store_format.py [--rows 1500000] [--dim 32] [--block 150000] [--dir /tmp]

Writes float32 features (rows x dim) in blocks of whole prompts both ways and times: writing block
by block, reading one block, reading 2,000 random rows (the working set's features on demand) and
the bytes on disk. Prints one table; figures in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--block", type=int, default=150_000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((min(args.block, args.rows - s), args.dim)).astype(np.float32)
              for s in range(0, args.rows, args.block)]
    rows = np.sort(rng.choice(args.rows, 2000, replace=False))
    root = Path(tempfile.mkdtemp(dir=args.dir))
    out = {}
    try:
        zpath = root / "f.zarr"

        def write_zarr() -> None:
            shutil.rmtree(zpath, ignore_errors=True)
            g = zarr.open_group(zpath, mode="w")
            a = g.create_array("features", shape=(args.rows, args.dim), chunks=(args.block, args.dim),
                               dtype="float32")
            for b, x in enumerate(blocks):
                a[b * args.block: b * args.block + x.shape[0]] = x

        ppath = root / "f.parquet"

        def write_parquet() -> None:
            shutil.rmtree(ppath, ignore_errors=True)
            ppath.mkdir()
            for b, x in enumerate(blocks):  # one file per block, d float32 columns
                table = pa.table({f"f{t}": x[:, t] for t in range(args.dim)})
                pq.write_table(table, ppath / f"block-{b:05d}.parquet")

        out["write"] = (_timed(write_zarr, 1), _timed(write_parquet, 1))
        za = zarr.open_group(zpath, mode="r")["features"]
        out["read one block"] = (
            _timed(lambda: np.asarray(za[args.block: 2 * args.block])),
            _timed(lambda: np.column_stack([c.to_numpy() for c in
                                            pq.read_table(ppath / "block-00001.parquet").columns])))

        def parquet_rows() -> np.ndarray:
            parts = []
            for b in np.unique(rows // args.block):
                mine = rows[rows // args.block == b] - b * args.block
                t = pq.read_table(ppath / f"block-{b:05d}.parquet")
                parts.append(np.column_stack([c.to_numpy() for c in t.columns])[mine])
            return np.concatenate(parts)

        out["2,000 random rows"] = (_timed(lambda: za.get_orthogonal_selection((rows, slice(None)))),
                                    _timed(parquet_rows))
        assert np.array_equal(za.get_orthogonal_selection((rows, slice(None))), parquet_rows())
        print(f"{args.rows:,} rows x d = {args.dim} float32, blocks of {args.block:,} rows "
              f"(zarr {zarr.__version__}, pyarrow {pa.__version__}); median of 3 (write: 1)")
        print(f"{'':<20} {'zarr':>10} {'parquet':>10}")
        for key, (z, p) in out.items():
            print(f"{key:<20} {z:>9.3f}s {p:>9.3f}s")
        print(f"{'on disk':<20} {_size(zpath) / 2**20:>8.1f}MB {_size(ppath) / 2**20:>8.1f}MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
