"""Sequence layers: ``feedback``, an autoregressive recurrent generator (it needs the builder),
and ``intervals``, the steps between consecutive notes made explicit to a discriminator.

``feedback: {layers: [lstm: {...}, dense: {...}, span_softmax: {...}]}`` runs its body one
step at a time and feeds each step's output back in: the recurrent layer at step t reads the
latent at step t concatenated with the body's output at step t-1 (zeros at t = 0), as
C-RNN-GAN's generator (Mogren 2016) feeds its last note to the next cell. Without it a
recurrent G's outputs at different steps are conditionally independent given its state: with
noise inside the head (Gumbel-softmax), each note is drawn on its own and the melody cannot
follow what it has just played.

The body starts with one recurrent layer (``lstm`` or ``gru``, forward only, returning every
step); the layers after it act on each step on its own (dense, activations, span_softmax).

``feedback: {layers: [...], recall: 4}`` adds attention to the body's own earlier output
(``recall`` heads of ``recall_dim`` each, 0 = none): between the recurrent layer and the
per-step layers, step t asks, by dot product, which earlier step j < t was in a state like
its own (query from h_t and the output fed back at t, key from the same at j) and reads what
the body emitted at j (value from the output at j), added to h_t through a linear map. A
learned "nothing" key with a zero value lets a step read none. Since h_j and the fed-back
note summarize the notes before j, a step whose recent notes match an earlier passage reads
the note that followed it: the induction mechanism attention models use to repeat motifs
(Music Transformer, Huang et al. 2018), which an LSTM state alone finds hard to learn. With
teacher forcing the earlier outputs are the real previous steps. ``recall_context: C``
(default 1) builds queries and keys from the last C outputs fed back instead of the last one
alone: a step then matches an earlier one on its last C notes explicitly, as a C-note phrase
(the state still carries the rest).

``intervals: {spans: spans, span: 0, max: 12}`` appends to each step of a one-hot sequence the
interval from the previous step's value of one categorical variable (span ``span``; for music,
the pitch), as a histogram over -max..max: tent-shaped bins of width 1, so an exact one-hot
input gives the one-hot of the interval in semitones and a softmax input (a generator's) its
expected value spread over the two nearest bins, with a gradient. Intervals beyond ``max`` land
in the outermost bins; step 0 has none (zeros). With only one-hot pitches a discriminator has
to learn subtraction to notice leaps; with this it reads them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganforge.architecture.builder import SpecNet, plan_network
from ganforge.architecture.layers import (
    Shape,
    ShapeError,
    SpanSoftmax,
    _fmt,
    _need,
    check_spans,
    register_layer,
)
from ganforge.errors import SpecError

_PER_STEP = {"dense", "relu", "leaky_relu", "tanh", "sigmoid", "span_softmax", "dropout"}


def _plan(shape: Shape, body: list[Any]) -> list[Any]:
    try:
        return plan_network({"layers": body}, shape, "body")
    except SpecError as exc:
        raise ShapeError(str(exc).rstrip(".")) from None


def _feedback_plans(shape: Shape, a: dict[str, Any]) -> tuple[list[Any], int]:
    """The body planned on (T, d + o), where o is its output width; and o."""
    _need(shape, 2, "a sequence (T, F)")
    limits = (("recall", 0, "attention heads over the body's earlier output; 0 = none"),
              ("recall_dim", 1, "the width of each recall head"),
              ("recall_context", 1, "how many of the last outputs each query and key see"))
    for key, low, what in limits:
        v = a[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ShapeError(f"{key} must be an integer >= {low} ({what}), got {v!r}")
    body = a["layers"]
    if not isinstance(body, list) or not body:
        raise ShapeError("layers must be a non-empty list of layer specs: one lstm or gru, then "
                         "per-step layers (dense, activations, span_softmax)")
    first = _plan(shape, body)
    if first[0].type not in ("lstm", "gru"):
        raise ShapeError(f"the body must start with an lstm or gru layer, got {first[0].type}")
    rnn = first[0].args
    if rnn["bidirectional"] or not rnn["return_sequences"]:
        raise ShapeError("the body's recurrent layer must run forward only and return every step "
                         "(bidirectional: false, return_sequences: true): step t cannot read "
                         "outputs it has not made yet")
    later = [p.type for p in first[1:] if p.type not in _PER_STEP]
    if later:
        raise ShapeError(f"after the recurrent layer the body may hold only per-step layers "
                         f"({', '.join(sorted(_PER_STEP))}), got {later[0]}")
    out = first[-1].out_shape
    if len(out) != 2 or out[0] != shape[0]:
        raise ShapeError(f"the body must map each step to a vector, got {_fmt(out)}")
    width = int(out[1])
    plans = _plan((shape[0], shape[1] + width), body)
    return plans, width


@register_layer("feedback", {"layers": None, "recall": 0, "recall_dim": 32, "recall_context": 1},
                required=("layers",),
                doc="autoregressive body: lstm/gru then per-step layers, run step by step with "
                    "each step's output fed to the next step's input (C-RNN-GAN's generator); "
                    "recall: attention heads from each step to what earlier steps emitted, "
                    "matched on the last recall_context outputs")
def _feedback(shape: Shape, a: dict[str, Any]) -> Shape:
    _, width = _feedback_plans(shape, a)
    return (shape[0], width)


def lagged(out: torch.Tensor, context: int) -> torch.Tensor:
    """(N, T, W) -> (N, T, context * W): step t holds ``out`` at t-1, t-2, ..., t-context
    (zeros before the first step), what a step's recall query reads besides its state."""
    n, t, w = out.shape
    padded = torch.cat([out.new_zeros(n, context, w), out], dim=1)
    return torch.cat([padded[:, context - k:context - k + t] for k in range(1, context + 1)],
                     dim=-1)


class Recall(nn.Module):
    """Attention from each step to the output of earlier steps (the module docstring's
    ``recall``): queries and keys from a step's recurrent state and the last ``context``
    outputs fed back to it (``prev``, :func:`lagged`), values from the earlier outputs, one
    learned "nothing" key with a zero value, the result added to the state."""

    def __init__(self, units: int, width: int, heads: int, dim: int, context: int = 1) -> None:
        super().__init__()
        self.heads, self.dim, self.context = int(heads), int(dim), int(context)
        self.query = nn.Linear(units + context * width, heads * dim)
        self.key = nn.Linear(units + context * width, heads * dim)
        self.value = nn.Linear(width, heads * dim)
        self.out = nn.Linear(heads * dim, units)
        self.null_key = nn.Parameter(torch.zeros(heads * dim))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, heads * dim) -> (N, heads, T, dim)."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.dim).transpose(1, 2)

    def _read(self, h: torch.Tensor, prev: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              allowed: torch.Tensor | None) -> torch.Tensor:
        q = self._split(self.query(torch.cat([h, prev], dim=-1)))
        null = self.null_key.to(q.dtype).reshape(1, self.heads, 1, self.dim)
        k = torch.cat([null.expand(q.shape[0], -1, -1, -1), k], dim=2)
        v = torch.cat([v.new_zeros(v.shape[0], self.heads, 1, self.dim), v], dim=2)
        scores = q @ k.transpose(-1, -2) / self.dim ** 0.5
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        read = (scores.softmax(-1) @ v).transpose(1, 2)
        return h + self.out(read.reshape(h.shape[0], h.shape[1], self.heads * self.dim))

    def memory(self, h: torch.Tensor, prev: torch.Tensor,
               out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The key and value one step leaves: from its state ``h`` and the last outputs fed
        back to it ``prev`` (:func:`lagged`), and from its output ``out``."""
        return (self._split(self.key(torch.cat([h, prev], dim=-1))),
                self._split(self.value(out)))

    def step(self, h: torch.Tensor, prev: torch.Tensor, keys: list[torch.Tensor],
             values: list[torch.Tensor]) -> torch.Tensor:
        """One step's state (N, 1, units) after reading the earlier steps' memories."""
        if keys:
            k, v = torch.cat(keys, dim=2), torch.cat(values, dim=2)
        else:
            k = h.new_zeros(h.shape[0], self.heads, 0, self.dim)
            v = k
        return self._read(h, prev, k, v, None)

    def sequence(self, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Every step at once (teacher forcing): step t reads steps j < t of ``out``, with
        queries and keys from ``lagged(out, context)``."""
        prev = lagged(out, self.context)
        k, v = self.memory(h, prev, out)
        t = h.shape[1]
        allowed = torch.ones(t, t + 1, dtype=torch.bool, device=h.device)
        allowed[:, 1:] = torch.ones(t, t, dtype=torch.bool, device=h.device).tril(-1)
        return self._read(h, prev, k, v, allowed)

    def extra_repr(self) -> str:
        return f"{self.heads} heads of {self.dim}, context {self.context}"


class Feedback(nn.Module):
    def __init__(self, body: SpecNet, width: int, recall: int = 0, recall_dim: int = 32,
                 recall_context: int = 1) -> None:
        super().__init__()
        self.body = body
        self.width = int(width)
        units = body.layers[0].rnn.hidden_size
        self.recall = (Recall(units, self.width, recall, recall_dim, recall_context)
                       if recall else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rnn, head = self.body.layers[0].rnn, self.body.layers[1:]
        prev = x.new_zeros(x.shape[0], 1, self.width)
        state = None
        outs: list[torch.Tensor] = []
        keys: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        seen = x.new_zeros(x.shape[0], 1, self.width * (self.recall.context if self.recall else 1))
        for t in range(x.shape[1]):
            s, state = rnn(torch.cat([x[:, t:t + 1], prev], dim=-1), state)
            h = s if self.recall is None else self.recall.step(s, seen, keys, values)
            for layer in head:
                h = layer(h)
            if self.recall is not None:
                k, v = self.recall.memory(s, seen, h)
                keys.append(k)
                values.append(v)
                # the last `context` outputs, newest first (lagged's order)
                seen = torch.cat([h, seen[..., :-self.width]], dim=-1)
            outs.append(h)
            prev = h
        return torch.cat(outs, dim=1)

    def teacher_forced_nll(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of ``target`` (N, T, width), one-hot per span, under
        the body read with teacher forcing: step t's recurrent layer reads the latent at t
        and ``target`` at t-1 (zeros at t = 0) instead of the body's own output, so all steps
        run in one call. The body's last layer must be ``span_softmax``: its spans' logits
        (before its Gumbel noise) give one cross entropy per span, averaged over samples and
        steps and summed over the spans (nats per step)."""
        rnn, head = self.body.layers[0].rnn, self.body.layers[1:]
        last = head[-1] if len(head) else None
        if not isinstance(last, SpanSoftmax):
            raise SpecError("the likelihood term needs the feedback body to end with "
                            "span_softmax (one categorical variable per span)")
        prev = torch.cat([target.new_zeros(target.shape[0], 1, self.width), target[:, :-1]],
                         dim=1)
        h, _ = rnn(torch.cat([x, prev.to(x.dtype)], dim=-1))
        if self.recall is not None:
            h = self.recall.sequence(h, target.to(h.dtype))
        for layer in head[:-1]:
            h = layer(h)
        nll = h.new_zeros(())
        for logits, onehot in zip(torch.split(h, last.spans, dim=-1),
                                  torch.split(target, last.spans, dim=-1), strict=True):
            nll = nll + nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                onehot.argmax(-1).reshape(-1))
        return nll

    def extra_repr(self) -> str:
        return f"feeds back {self.width} features"


def teacher_forced_nll(net: nn.Module, z: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The likelihood term of ``objective.likelihood``: ``net`` (a spec-built generator whose
    last layer is ``feedback``) maps ``z`` through its layers before the feedback layer, which
    then scores the real batch with teacher forcing (``Feedback.teacher_forced_nll``)."""
    layers = list(getattr(net, "layers", []))
    if not layers or not isinstance(layers[-1], Feedback):
        raise SpecError("the likelihood term needs a generator whose last layer is feedback "
                        "(an autoregressive body ending in span_softmax)")
    h = z
    for layer in layers[:-1]:
        h = layer(h)
    return layers[-1].teacher_forced_nll(h, real)


@_feedback.builder
def _feedback_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    plans, width = _feedback_plans(shape, a)
    return Feedback(SpecNet(plans, plans[0].in_shape, "body"), width, a["recall"],
                    a["recall_dim"], a["recall_context"])


@register_layer("intervals", {"spans": None, "span": 0, "max": 12}, required=("spans",),
                doc="append the interval between consecutive steps of one one-hot variable "
                    "(span index span; music: the pitch) as tent bins over -max..max, for a "
                    "discriminator that should see leaps")
def _intervals(shape: Shape, a: dict[str, Any]) -> Shape:
    _need(shape, 2, "a sequence (T, F)")
    spans, span, top = check_spans(shape, a["spans"]), a["span"], a["max"]
    if isinstance(span, bool) or not isinstance(span, int) or not 0 <= span < len(spans):
        raise ShapeError(f"span must be the index of one of the {len(spans)} spans "
                         f"(0 = the first; music's pitch), got {span!r}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ShapeError(f"max must be an integer >= 1 (the largest interval with its own bin; "
                         f"12 = an octave), got {top!r}")
    return (shape[0], shape[1] + 2 * top + 1)


class Intervals(nn.Module):
    def __init__(self, spans: list[int], span: int, top: int) -> None:
        super().__init__()
        self.start = int(sum(spans[:span]))
        self.width = int(spans[span])
        self.top = int(top)
        self.register_buffer("values", torch.arange(self.width, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("centres", torch.arange(-self.top, self.top + 1,
                                                     dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = x[..., self.start:self.start + self.width]
        value = probs @ self.values.to(x.dtype)                       # (N, T) expected index
        step = (value[:, 1:] - value[:, :-1]).clamp(-self.top, self.top)
        bins = (1 - (step.unsqueeze(-1) - self.centres.to(x.dtype)).abs()).clamp_min(0)
        bins = torch.cat([bins.new_zeros(bins.shape[0], 1, bins.shape[2]), bins], dim=1)
        return torch.cat([x, bins], dim=-1)

    def extra_repr(self) -> str:
        return f"features {self.start}..{self.start + self.width - 1}, bins -{self.top}..{self.top}"


@_intervals.builder
def _intervals_build(shape: Shape, a: dict[str, Any]) -> nn.Module:
    return Intervals(a["spans"], a["span"], a["max"])
