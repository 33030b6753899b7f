"""The ``ctgan`` task: CTGAN's training step for tables (Xu et al. 2019), written from the paper.

- The generator gets ``z`` and a conditional vector (one-hot of one category of one discrete
  column); its spec is the body, and the task appends a dense layer to the encoded width.
  Output activations per span: tanh for each continuous ``alpha``, Gumbel-softmax (temperature
  ``tabular.gumbel_tau``) for each one-hot span; all spans at once through a padded
  ``(batch, spans, widest)`` layout, no loop over columns.
- Training-by-sampling: a discrete column is drawn uniformly, then one of its categories with
  probability proportional to log(1 + count); the real batch is drawn among the rows that have
  that category (then shuffled against the conditions, as in the reference code), and the
  generator pays a cross-entropy when its output misses the asked category.
- Packing (PacGAN): the discriminator sees ``tabular.pac`` rows (with their conditions)
  concatenated into one input.
- Loss: WGAN with gradient penalty (weight ``tabular.gp_weight``, interpolating per pack); or
  ``non_saturating`` for the plain MLP-GAN preset (``tabular-mlp``).
- Auxiliary classifier (``tabular.classifier`` > 0, CTAB-GAN, Zhao et al. 2021): a small MLP
  learns the target column (``data.target``, categorical) from the other columns of each step's
  real rows, and the generator pays ``classifier`` times its cross-entropy on the generated
  rows against the target the generator wrote into them, so that generated features imply
  their own label as real ones do.

Everything random during training goes through torch's global generator, which checkpoints
record, so a resumed run repeats an uninterrupted one. Sampling (sample CSVs, ``ganforge
sample``) uses its own seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.architecture import build_network
from ganforge.data.tabular import TableTransformer
from ganforge.errors import CheckpointError, ConfigError, DataError, GanforgeError, SpecError
from ganforge.fileio import atomic_path
from ganforge.objectives import get_loss
from ganforge.objectives.compat import check_objective
from ganforge.objectives.penalties import gradient_penalty
from ganforge.optim import build_optimizer
from ganforge.run import Run
from ganforge.tasks.base import Task, TaskContext, load_weights
from ganforge.tasks.unconditional import set_requires_grad

TRANSFORMER_FILE = "table.json"


# ------------------------------------------------------------------------ span layout
GROUP_COST = 64  # a softmax group's fixed cost, in padded columns (a few ops' launch time)


def width_groups(widths: Sequence[int], cost: int = GROUP_COST) -> list[list[int]]:
    """Partition spans (by index) into groups that share one padded softmax block.

    A group of k spans pads every span to its widest, so it costs k * widest columns plus a
    fixed ``cost`` per group. Sorted by width, the cheapest partition into runs of neighbours
    is found exactly by dynamic programming. One 538-category column among ten 2-11-wide spans
    gets its own block instead of padding all ten to 538."""
    order = sorted(range(len(widths)), key=lambda i: (widths[i], i))
    w = [widths[i] for i in order]
    best = [0.0] + [float("inf")] * len(w)
    cut = [0] * (len(w) + 1)
    for j in range(1, len(w) + 1):
        for i in range(j):  # the last group holds sorted spans i..j-1; w[j-1] is its widest
            c = best[i] + (j - i) * w[j - 1] + cost
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], len(w)
    while j:
        groups.append(sorted(order[cut[j]:j]))
        j = cut[j]
    return groups[::-1]


class SpanLayout(nn.Module):
    """Index tensors that apply per-span activations to all spans at once.

    The one-hot spans are grouped by width (``width_groups``); each group's logits are
    scattered into a padded ``(batch, spans, widest)`` block (``-inf`` in the padding) for one
    softmax over its spans, so a table with one very wide column does not pad every other span
    to that width. Every index step is an ``index_select`` / ``index_copy`` along the feature
    axis, whose backward passes are ``index_add`` / ``index_select``: advanced indexing
    (``raw[:, idx]``) costs an ``index_put`` with accumulation in backward, several times
    slower on CPU. Gumbel noise is drawn for the real one-hot columns only, not the padding;
    ``soft_cols`` lists those columns in group order, the order of the noise's columns.
    """

    def __init__(self, transformer: Any, group_cost: int = GROUP_COST) -> None:
        super().__init__()
        spans = transformer.spans
        tanh = [s.start for s in spans if s.act == "tanh"]
        soft = [s for s in spans if s.act == "softmax"]
        cols: list[torch.Tensor] = []
        self.blocks: list[tuple[int, int, int, int]] = []  # (offset, columns, spans, widest)
        offset = 0
        for g, members in enumerate(width_groups([s.width for s in soft], group_cost)):
            wmax = max(soft[i].width for i in members)
            valid = torch.zeros(len(members), wmax, dtype=torch.bool)
            for r, i in enumerate(members):
                valid[r, :soft[i].width] = True
                cols.append(torch.arange(soft[i].start, soft[i].start + soft[i].width))
            n_cols = int(valid.sum())
            self.blocks.append((offset, n_cols, len(members), wmax))
            offset += n_cols
            # position of each one-hot column in the group's flattened padded block
            self.register_buffer(f"pad_pos_{g}", valid.reshape(-1).nonzero().reshape(-1),
                                 persistent=False)
        soft_cols = torch.cat(cols) if cols else torch.zeros(0, dtype=torch.long)
        order = torch.cat([torch.tensor(tanh, dtype=torch.long), soft_cols])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        self.register_buffer("tanh_idx", torch.tensor(tanh, dtype=torch.long), persistent=False)
        self.register_buffer("soft_cols", soft_cols, persistent=False)
        self.register_buffer("inverse", inverse, persistent=False)
        self.width = transformer.width

    def gumbel(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """(n, one-hot columns) standard Gumbel noise, -log(-log(U)) with U ~ U(0, 1) from the
        global generator (the distribution of ``-log(Exp(1))``, as ``F.gumbel_softmax``
        draws it; ``exponential_`` is ~9x slower than ``rand`` on CPU)."""
        u = torch.rand(n, len(self.soft_cols), device=like.device, dtype=like.dtype)
        return -torch.log(-torch.log(u.clamp_min_(torch.finfo(like.dtype).tiny)))

    def activate(self, raw: torch.Tensor, tau: float) -> torch.Tensor:
        """tanh on alpha columns, Gumbel-softmax(tau) on every one-hot span."""
        b = raw.shape[0]
        parts = [torch.tanh(raw.index_select(1, self.tanh_idx))]
        if self.soft_cols.numel():
            y = (raw.index_select(1, self.soft_cols) + self.gumbel(b, raw)) / tau
            for g, (off, n_cols, n_spans, wmax) in enumerate(self.blocks):
                yg = y.narrow(1, off, n_cols)
                if n_cols == n_spans * wmax:  # spans of one width: no padding
                    parts.append(torch.softmax(yg.view(b, n_spans, wmax), -1).view(b, -1))
                    continue
                pos = getattr(self, f"pad_pos_{g}")
                pad = yg.new_full((b, n_spans * wmax), float("-inf")).index_copy(1, pos, yg)
                soft = torch.softmax(pad.view(b, n_spans, wmax), dim=-1).view(b, -1)
                parts.append(soft.index_select(1, pos))
        return torch.cat(parts, 1).index_select(1, self.inverse)

    def sample(self, raw: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """An encoded matrix whose argmax per span is a draw from softmax(logits)."""
        out = raw.clone()
        out[:, self.tanh_idx] = torch.tanh(raw[:, self.tanh_idx])
        if self.soft_cols.numel():
            u = torch.rand(raw.shape[0], len(self.soft_cols), generator=gen).clamp_min(1e-20)
            out[:, self.soft_cols] += -torch.log(-torch.log(u)).to(raw.device)
        return out


# ---------------------------------------------------------------------- conditions
class CondSampler:
    """The conditional vector over the discrete columns, and rows that match a condition."""

    def __init__(self, transformer: Any, x: torch.Tensor | None, log_frequency: bool) -> None:
        spans = transformer.discrete_spans
        self.n_cols = len(spans)
        self.width = sum(s.width for s in spans)
        self.ncat = torch.tensor([s.width for s in spans], dtype=torch.long)
        self.cond_start = torch.cumsum(torch.tensor([0] + [s.width for s in spans]), 0)[:-1]
        self.data_start = torch.tensor([s.start for s in spans], dtype=torch.long)
        wmax = int(self.ncat.max()) if self.n_cols else 1
        freq = torch.zeros(self.n_cols, wmax, dtype=torch.float64)
        for d, s in enumerate(spans):
            counts = transformer.columns[s.column].counts
            freq[d, :s.width] = torch.tensor(counts, dtype=torch.float64)
        self.cum_log = self._cum(torch.log1p(freq) if log_frequency else freq)
        self.cum_emp = self._cum(freq)
        self.device = torch.device("cpu")
        if x is not None and self.n_cols:
            self.device = x.device
            n = x.shape[0]
            cats = torch.stack([x[:, a:a + int(w)].argmax(1).cpu() for a, w in
                                zip(self.data_start.tolist(), self.ncat.tolist(), strict=True)], 1)
            gid = (cats + self.cond_start).reshape(-1)
            rows = torch.arange(n).repeat_interleave(self.n_cols)
            order = torch.argsort(gid, stable=True)
            self.rows = rows[order].to(self.device)
            counts = torch.bincount(gid, minlength=self.width)
            self.counts = counts.to(self.device)
            self.offsets = (torch.cumsum(counts, 0) - counts).to(self.device)
            self.x = x
        for name in ("ncat", "cond_start", "cum_log", "cum_emp"):
            setattr(self, name, getattr(self, name).to(self.device))

    @staticmethod
    def _cum(p: torch.Tensor) -> torch.Tensor:
        p = p / p.sum(1, keepdim=True).clamp_min(1e-12)
        return torch.cumsum(p, 1).float()

    def draw(self, n: int, log: bool, gen: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(discrete column, global category id) per row: column uniform, category by freq."""
        cum = self.cum_log if log else self.cum_emp
        col = torch.randint(self.n_cols, (n,), generator=gen).to(self.device)
        u = torch.rand(n, 1, generator=gen).to(self.device)
        cat = (cum[col] < u).sum(1).clamp(max=self.ncat[col] - 1)
        return col, self.cond_start[col] + cat

    def one_hot(self, gid: torch.Tensor) -> torch.Tensor:
        return F.one_hot(gid, self.width).float()

    def real_rows(self, gid: torch.Tensor) -> torch.Tensor:
        """One uniformly drawn training row that has category ``gid``, per entry."""
        pick = (torch.rand(gid.shape[0], device=self.device) * self.counts[gid]).long()
        return self.x.index_select(0, self.rows[self.offsets[gid] + pick])

    def cond_loss(self, raw: torch.Tensor, col: torch.Tensor, gid: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the generator's logits on the asked column against the category."""
        wmax = int(self.ncat.max())
        ar = torch.arange(wmax, device=raw.device)
        start = self.data_start.to(raw.device)[col]
        idx = (start[:, None] + ar).clamp(max=raw.shape[1] - 1)
        logits = raw.gather(1, idx).masked_fill(ar >= self.ncat[col][:, None], float("-inf"))
        return F.cross_entropy(logits, gid - self.cond_start[col])


# ------------------------------------------------------------------ auxiliary classifier
class TargetClassifier(nn.Module):
    """CTAB-GAN's auxiliary classifier: an MLP from an encoded row without the target's span
    to the target's logits. ``labels`` reads the target category of encoded rows (argmax)."""

    def __init__(self, width: int, start: int, classes: int, units: int) -> None:
        super().__init__()
        keep = [i for i in range(width) if not start <= i < start + classes]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long), persistent=False)
        self.start, self.classes = start, classes
        self.net = nn.Sequential(nn.Linear(len(keep), units), nn.LeakyReLU(0.2),
                                 nn.Linear(units, units), nn.LeakyReLU(0.2),
                                 nn.Linear(units, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.index_select(1, self.keep))

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.start + self.classes].argmax(1)


def make_classifier(cfg: Any, transformer: Any) -> TargetClassifier | None:
    """The auxiliary classifier of ``tabular.classifier`` (None when it is 0)."""
    if not cfg.tabular.classifier:
        return None
    target = cfg.data.target
    names = {transformer.columns[s.column].name: s for s in transformer.discrete_spans}
    if target is None or target not in names:
        kind = ("no data.target is set" if target is None else
                f"data.target '{target}' is not a categorical column of the table")
        raise ConfigError(f"tabular.classifier needs a categorical target column to learn, but "
                          f"{kind}. Set data.target to one of: {', '.join(names) or '(none)'}; "
                          f"or set tabular.classifier: 0.")
    span = names[target]
    return TargetClassifier(transformer.width, span.start, span.width,
                            cfg.tabular.classifier_units)


# --------------------------------------------------------------------------- networks
class TableGenerator(nn.Module):
    """Spec body + dense head to the encoded width (raw logits; activations by the task)."""

    def __init__(self, body: nn.Module, hidden: int, width: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class PackedCritic(nn.Module):
    """Reshapes (B, F) to (B / pac, pac * F) and applies the spec network."""

    def __init__(self, body: nn.Module, pac: int) -> None:
        super().__init__()
        self.body = body
        self.pac = pac

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(x.shape[0] // self.pac, -1))


def make_networks(cfg: Any, transformer: Any) -> tuple[TableGenerator, PackedCritic]:
    """G and D for this table; spec errors name the spec path."""
    tc = cfg.tabular
    if len(cfg.latent.full_shape) != 1:
        raise ConfigError("the ctgan task needs a vector latent: set latent.dim, not latent.shape.")
    cond_w = CondSampler(transformer, None, True).width if tc.conditional else 0
    z_dim = cfg.latent.full_shape[0]
    body = build_network(cfg.generator.model_dump(), (z_dim + cond_w,), "generator")
    if len(body.out_shape) != 1:
        raise SpecError(f"generator: the body must end in a vector, got {body.out_shape}; the "
                        f"ctgan task appends the dense layer to the encoded width itself.")
    G = TableGenerator(body, body.out_shape[0], transformer.width)
    d_in = tc.pac * (transformer.width + cond_w)
    d_body = build_network(cfg.discriminator.model_dump(), (d_in,), "discriminator")
    if d_body.out_shape != (1,):
        raise SpecError(f"discriminator: output {d_body.out_shape}, but it must output one "
                        f"value per pack (end it with dense {{units: 1}}).")
    return G, PackedCritic(d_body, tc.pac)


def _check(cfg: Any, data: Any) -> Any:
    if data.kind != "table" or "transformer" not in data.info:
        raise ConfigError(f"task '{cfg.task}' trains on tables; data.source '{cfg.data.source}' "
                          f"is not one. Use sklearn:NAME, csv:PATH or frame:NAME.")
    if cfg.train.batch_size % cfg.tabular.pac:
        raise ConfigError(f"train.batch_size ({cfg.train.batch_size}) must be a multiple of "
                          f"tabular.pac ({cfg.tabular.pac}).")
    return data.info["transformer"]


# ------------------------------------------------------------------------------ task
class CTGANTask(Task):
    name = "ctgan"
    sections = ("tabular",)
    objective_keys = ()
    objective_elsewhere = "its loss and penalty are tabular.loss and tabular.gp_weight"

    @classmethod
    def check(cls, cfg: Any, data_shape: tuple[int, ...] | None) -> None:
        """The objective's rules; the networks are built (and checked) from the table."""
        check_objective(cfg, None)

    @classmethod
    def build_networks(cls, ctx: TaskContext) -> tuple[nn.Module, nn.Module]:
        transformer = _check(ctx.cfg, ctx.data)
        G, D = make_networks(ctx.cfg, transformer)
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        transformer.save(ctx.run_dir / TRANSFORMER_FILE)
        return G, D

    @classmethod
    def load_run(cls, run_dir: str | Path, cfg: Any, device: str = "cpu",
                 checkpoint: str | Path | None = None) -> Run:
        path_t = Path(run_dir) / TRANSFORMER_FILE
        if not path_t.is_file():
            raise CheckpointError(f"'{run_dir}' has no {TRANSFORMER_FILE} (the table's "
                                  f"encoding); it was not trained with the ctgan task, or is "
                                  f"incomplete.")
        try:
            transformer = TableTransformer.load(path_t)
        except DataError as exc:
            raise CheckpointError(str(exc)) from None
        G, D = make_networks(cfg, transformer)
        step = load_weights(run_dir, {"generator": G, "discriminator": D}, device, checkpoint)
        return TableRun(run_dir, cfg, G, D, step, (transformer.width,), "table",
                        transformer=transformer)

    def trained_run(self, ctx: TaskContext) -> Run:
        return type(self).load_run(ctx.run_dir, ctx.cfg, str(ctx.device))

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        cfg = trainer.cfg
        self.cfg = cfg.tabular
        self.G, self.D = trainer.G, trainer.D
        self.opt_g, self.opt_d = trainer.opt_g, trainer.opt_d
        self.latent = trainer.latent
        self.d_steps = cfg.train.d_steps
        self.batch = cfg.train.batch_size
        self.transformer = _check(cfg, trainer.data)
        self.layout = SpanLayout(self.transformer).to(trainer.device)
        self.sampler = CondSampler(self.transformer, trainer.data.x, self.cfg.log_frequency)
        self.conditional = self.cfg.conditional and self.sampler.n_cols > 0
        self.fresh_g_batch = bool(getattr(self.cfg, "fresh_g_batch", False))
        self.grid_size = cfg.monitor.grid_size
        self.seed = cfg.seed
        self.loss = get_loss(self.cfg.loss)  # wgan_gp (CTGAN) or non_saturating (MLP-GAN)
        self.probabilities = self.loss.probabilities
        self.clf = make_classifier(cfg, self.transformer)
        if self.clf is not None:  # G's optimizer settings
            self.clf.to(trainer.device)
            self.opt_c = build_optimizer(self.clf.parameters(), cfg.optim.g)

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self.G, "discriminator": self.D}
        return mods if self.clf is None else {**mods, "classifier": self.clf}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"generator": self.opt_g, "discriminator": self.opt_d}
        return opts if self.clf is None else {**opts, "classifier": self.opt_c}

    def train_step(self, next_batch: Any) -> dict[str, Any]:
        b = self.batch
        set_requires_grad(self.D, True)
        for i in range(self.d_steps):
            real, _ = next_batch()  # also keeps the trainer's epoch count
            z = self.latent(b)
            if self.conditional:
                col, gid = self.sampler.draw(b, self.cfg.log_frequency)
                cond = self.sampler.one_hot(gid)
                perm = torch.randperm(b, device=gid.device)
                real = self.sampler.real_rows(gid[perm])
                real_in = torch.cat([real, cond[perm]], 1)
                z = torch.cat([z, cond], 1)
            else:
                cond = real.new_zeros(b, 0)
                real_in = real
            with torch.set_grad_enabled(i == self.d_steps - 1 and not self.fresh_g_batch):
                raw = self.G(z)
                fake = self.layout.activate(raw, self.cfg.gumbel_tau)
            fake_in = torch.cat([fake, cond], 1)
            logits = self.D(torch.cat([real_in, fake_in.detach()]))
            y_real, y_fake = logits.chunk(2)
            if self.cfg.loss == "wgan_gp":  # one interpolation and gradient norm per pack
                gp = gradient_penalty(self.D, real_in, fake_in.detach(), 1.0, group=self.cfg.pac)
                d_loss = self.loss.d_loss(y_real, y_fake) + self.cfg.gp_weight * gp
            else:
                gp = torch.zeros((), device=real.device)
                d_loss = self.loss.d_loss(y_real, y_fake)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()

        set_requires_grad(self.D, False)
        if self.fresh_g_batch:  # the reference algorithm: new z and conditions for G's update
            z = self.latent(b)
            if self.conditional:
                col, gid = self.sampler.draw(b, self.cfg.log_frequency)
                cond = self.sampler.one_hot(gid)
                z = torch.cat([z, cond], 1)
            raw = self.G(z)
            fake = self.layout.activate(raw, self.cfg.gumbel_tau)
            fake_in = torch.cat([fake, cond], 1)
        y_g = self.D(fake_in)
        adv = self.loss.g_loss(y_g)
        cond_loss = (self.sampler.cond_loss(raw, col, gid) if self.conditional
                     else torch.zeros((), device=raw.device))
        g_loss = adv + cond_loss
        extra: dict[str, Any] = {}
        if self.clf is not None:
            # the classifier learns the target from the real rows; then generated features
            # must imply the generated label
            c_loss = F.cross_entropy(self.clf(real), self.clf.labels(real))
            self.opt_c.zero_grad(set_to_none=True)
            c_loss.backward()
            self.opt_c.step()
            set_requires_grad(self.clf, False)
            clf_g = F.cross_entropy(self.clf(fake), self.clf.labels(fake.detach()))
            g_loss = g_loss + self.cfg.classifier * clf_g
            set_requires_grad(self.clf, True)
            extra = {"clf_loss": c_loss.detach(), "clf_g": clf_g.detach()}
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        set_requires_grad(self.D, True)
        to_p = torch.sigmoid if self.probabilities else (lambda t: t)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": to_p(y_real.detach()).mean(), "d_fake": to_p(y_fake.detach()).mean(),
                "gp": gp.detach(), "cond_loss": cond_loss.detach(), "images": b * self.d_steps,
                **extra}

    def save_samples(self, trainer: Any) -> Path:
        """The trainer's periodic samples: ``grid_size`` rows as a CSV (fixed seed)."""
        df = generate_table(self.G, self.transformer, trainer.cfg, self.grid_size,
                            seed=self.seed + 3)
        path = trainer.run_dir / "samples" / f"step_{trainer.step:08d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        return path


# --------------------------------------------------------------------------- sampling
def parse_where(where: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """``"col=value"`` or several of them (a list, or one string joined by commas) as
    (column, value) pairs; a column named twice is an error."""
    if where is None:
        return []
    items = [where] if isinstance(where, str) else list(where)
    parts = [p for item in items for p in str(item).split(",") if p.strip()]
    pairs: list[tuple[str, str]] = []
    for part in parts:
        col, sep, val = part.partition("=")
        if not sep or not col.strip():
            raise GanforgeError(f"--where '{part}' must look like COLUMN=VALUE, e.g. "
                                f"--where \"target=malignant\" (several: --where a=x --where b=y).")
        pairs.append((col.strip(), val.strip()))
    cols = [c for c, _ in pairs]
    if len(set(cols)) != len(cols):
        raise GanforgeError(f"--where names a column twice ({', '.join(cols)}); a row has one "
                            f"value per column.")
    return pairs


@torch.no_grad()
def generate_table(G: nn.Module, transformer: Any, cfg: Any, n: int, seed: int = 0,
                   where: str | Sequence[str] | None = None, batch_size: int = 4096,
                   max_rounds: int = 50) -> Any:
    """``n`` synthetic rows as a DataFrame. ``where="col=value"`` (or several such) keeps rows
    having every one of those values: each draw's condition vector asks for one of them (in
    turn), rows that miss any are drawn again."""
    import pandas as pd

    if n < 1:
        raise GanforgeError(f"the number of rows must be >= 1, got {n}.")
    was = G.training
    G.eval()
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    layout = SpanLayout(transformer).to(device)
    sampler = CondSampler(transformer, None, cfg.tabular.log_frequency)
    conditional = cfg.tabular.conditional and sampler.n_cols > 0
    wants = []  # (discrete column, category, its id in the condition vector)
    for col, val in parse_where(where):
        d, j = transformer.category_index(col, val)
        wants.append((d, j, int(sampler.cond_start[d]) + j))
    ids = torch.tensor([w[2] for w in wants], dtype=torch.long)
    z_dim = cfg.latent.full_shape[0]
    chunks, have = [], 0
    try:
        for _ in range(max_rounds if wants else 1 << 30):
            m = min(batch_size, max(n - have, 1) * (2 * len(wants) if wants else 1))
            z = torch.randn(m, z_dim, generator=gen)
            if conditional:
                if wants:
                    gid = ids[torch.arange(m) % len(ids)]
                else:
                    _, gid = sampler.draw(m, log=False, gen=gen)
                z = torch.cat([z, sampler.one_hot(gid)], 1)
            enc = layout.sample(G(z.to(device)), gen).cpu()
            if wants:
                hit = torch.ones(enc.shape[0], dtype=torch.bool)
                for d, j, _ in wants:
                    s = transformer.discrete_spans[d]
                    hit &= enc[:, s.start:s.start + s.width].argmax(1) == j
                enc = enc[hit]
            chunks.append(enc)
            have += enc.shape[0]
            if have >= n:
                break
    finally:
        G.train(was)
    if have < n:
        asked = " and ".join(f"{c}={v}" for c, v in parse_where(where))
        raise GanforgeError(f"the model produced only {have} of {n} rows with {asked} in "
                            f"{max_rounds} rounds; that combination is rare in its output. "
                            f"Train longer or ask for fewer rows.")
    df = transformer.inverse_transform(torch.cat(chunks)[:n], seed=seed)
    return df.reset_index(drop=True) if isinstance(df, pd.DataFrame) else df


class TableRun(Run):
    """A trained table model: ``sample`` returns a DataFrame, ``save_samples`` a CSV."""

    def __init__(self, *args: Any, transformer: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.transformer = transformer

    def sample(self, n: int, seed: int = 0, where: str | Sequence[str] | None = None) -> Any:
        return generate_table(self.generator, self.transformer, self.config, n, seed, where)

    def save_samples(self, samples: Any, out: str | Path) -> Path:
        out = Path(out)
        if out.suffix.lower() != ".csv":
            raise GanforgeError(f"cannot write '{out}': table samples are written as .csv.")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            samples.to_csv(tmp, index=False)
        return out


CTGANTask.run_class = TableRun

__all__ = ["CTGANTask", "CondSampler", "SpanLayout", "TableRun", "TargetClassifier",
           "generate_table", "make_classifier", "make_networks"]
