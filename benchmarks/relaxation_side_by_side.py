"""The relaxation's passes, this tree against another (e.g. main's), one run alternating:

    python benchmarks/relaxation_side_by_side.py OTHER_TREE [relaxation_passes.py options]

``OTHER_TREE`` is a checkout of the other version (e.g. ``git archive main | tar -x -C DIR``).
Each repetition runs ``benchmarks/relaxation_passes.py --repeat 1`` (this tree's script) once
with the other tree's package on PYTHONPATH and once with this one's, in that order, as fresh
processes (BLAS on one thread); prints their lines tagged ``other`` / ``this``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    other = Path(sys.argv[1]).resolve()
    rest = sys.argv[2:]
    repeat = 3
    if "--repeat" in rest:
        i = rest.index("--repeat")
        repeat = int(rest[i + 1])
        rest = rest[:i] + rest[i + 2:]
    for rep in range(repeat):
        for tag, tree in (("other", other), ("this", HERE.parent)):
            env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")
            out = subprocess.run([sys.executable, str(HERE / "relaxation_passes.py"), *rest, "--repeat", "1"],
                                 env=env, capture_output=True, text=True, check=False)
            for line in out.stdout.splitlines():
                print(f"{tag:<5} rep {rep}: {line}", flush=True)
            if out.returncode:
                print(f"{tag:<5} rep {rep}: failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)


if __name__ == "__main__":
    main()
