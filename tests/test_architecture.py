"""Shape inference: every layer type's rule equals a real forward pass; bad specs name the path."""

import numpy as np
import pytest
import torch

from ganforge.api import load_config
from ganforge.architecture import LAYERS, build_network, plan_network, summary, validate_gan
from ganforge.architecture.layers_seq import teacher_forced_nll
from ganforge.errors import SpecError

# (layer entry, input shape) covering every layer type and padding mode.
CASES = [
    ({"dense": {"units": 7}}, (5,)),
    ({"dense": {"units": 7, "bias": False}}, (4, 5)),
    ({"conv2d": {"filters": 4, "kernel": 5, "stride": 2}}, (1, 28, 28)),
    ({"conv2d": {"filters": 4, "kernel": 3, "stride": 2, "padding": "same"}}, (2, 7, 9)),
    ({"conv2d": {"filters": 4, "kernel": 4, "stride": 2, "padding": 1}}, (3, 64, 64)),
    ({"conv2d": {"filters": 4, "kernel": [3, 5], "stride": 1, "padding": "valid"}}, (3, 10, 12)),
    ({"conv_transpose2d": {"filters": 3, "kernel": 5, "stride": 2}}, (8, 7, 7)),
    ({"conv_transpose2d": {"filters": 3, "kernel": 5, "stride": 1}}, (8, 7, 7)),
    ({"conv_transpose2d": {"filters": 3, "kernel": 4, "stride": 2, "padding": 1}}, (8, 4, 4)),
    ({"conv_transpose2d": {"filters": 3, "kernel": 4, "stride": 1, "padding": "valid"}}, (8, 1, 1)),
    ({"upsample": {"scale": 2}}, (3, 5, 6)),
    ({"upsample": {"scale": 3, "mode": "bilinear"}}, (3, 5, 6)),
    ({"reshape": {"shape": [4, 3, 2]}}, (24,)),
    ("flatten", (3, 4, 5)),
    ("batch_norm", (6,)),
    ("batch_norm", (5, 6)),
    ("batch_norm", (3, 4, 4)),
    ("layer_norm", (6,)),
    ("layer_norm", (3, 4, 4)),
    ("instance_norm", (3, 4, 4)),
    ({"reflection_pad": {"pad": 2}}, (3, 5, 6)),  # image-to-image layers (translation)
    ({"residual": {"layers": [{"reflection_pad": {"pad": 1}},
                              {"conv2d": {"filters": 3, "padding": "valid"}}]}}, (3, 6, 6)),
    ({"unet": {"out_channels": 2, "filters": 4, "depth": 3}}, (1, 28, 28)),
    ({"dropout": {"p": 0.3}}, (6,)),
    ("relu", (6,)),
    ({"leaky_relu": {"slope": 0.3}}, (6,)),
    ("tanh", (3, 4, 4)),
    ("sigmoid", (6,)),
    ({"lstm": {"units": 8}}, (10, 3)),
    ({"lstm": {"units": 8, "layers": 2, "bidirectional": True, "return_sequences": False}}, (10, 3)),
    ({"gru": {"units": 5, "layers": 3}}, (12, 4)),
    ({"gru": {"units": 5, "return_sequences": False}}, (12, 4)),
    ({"span_softmax": {"spans": [3, 4], "tau": 0.2, "hard": True}}, (10, 7)),
    ({"span_softmax": {"spans": [3, 4], "hard": [True, False]}}, (10, 7)),
    ({"hold": {"channels": 2}}, (10, 7)),
    ({"feedback": {"layers": [{"gru": {"units": 6}}, {"dense": {"units": 5}}, "tanh"]}}, (10, 3)),
    ({"feedback": {"layers": [{"lstm": {"units": 6}}, {"dense": {"units": 5}}], "recall": 2,
                   "recall_dim": 3}}, (10, 3)),
    ({"intervals": {"spans": [5, 2], "span": 0, "max": 3}}, (10, 7)),
    ({"repeat": {"times": 6}}, (5,)),
    ({"dense": {"units": 3, "spectral_norm": True}}, (5,)),
    ({"dense_concat": {"units": 4}}, (6,)),
    ({"maxout": {"units": 4, "pieces": 3}}, (6,)),
    ({"minibatch_discrimination": {"kernels": 7, "dim": 3}}, (6,)),
    ({"minibatch_stddev": {"group_size": 3}}, (2, 4, 4)),
    ({"conv2d": {"filters": 2, "kernel": 5, "stride": 2, "spectral_norm": True}}, (1, 28, 28)),
]


def _name(entry):
    return entry if isinstance(entry, str) else next(iter(entry))


def test_every_layer_type_is_covered():
    # Layers ganforge ships (tests may register their own, e.g. test_monitor's test_zero).
    shipped = {name for name, lt in LAYERS.items() if lt.infer.__module__.startswith("ganforge.")}
    assert {_name(e) for e, _ in CASES} == shipped


@pytest.mark.parametrize("entry,in_shape", CASES, ids=[str(c[0]) for c in CASES])
def test_inferred_shape_equals_forward(entry, in_shape):
    net = build_network({"layers": [entry]}, in_shape, "net")
    inferred = plan_network({"layers": [entry]}, in_shape, "net")[-1].out_shape
    net.train()
    out = net(torch.randn(3, *in_shape))
    assert tuple(out.shape[1:]) == inferred


def test_repeat_copies_the_vector_to_every_step_and_sums_its_gradients():
    net = build_network({"layers": [{"repeat": {"times": 4}}]}, (3,), "net")
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 7.0]], requires_grad=True)
    out = net(x)
    assert out.shape == (2, 4, 3)
    assert torch.equal(out, x.detach()[:, None, :].repeat(1, 4, 1))
    w = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)
    (out * w).sum().backward()
    assert torch.equal(x.grad, w.sum(1))  # each step's gradient flows back to the one vector


def test_hold_keeps_the_first_channels_at_step_zero_and_sends_their_gradient_there():
    net = build_network({"layers": [{"hold": {"channels": 2}}]}, (4, 3), "net")
    x = torch.randn(2, 4, 3, requires_grad=True)
    out = net(x)
    assert torch.equal(out[:, :, :2], x.detach()[:, :1, :2].expand(-1, 4, -1))
    assert torch.equal(out[:, :, 2], x.detach()[:, :, 2])  # the rest stays per-step noise
    w = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)
    (out * w).sum().backward()
    assert torch.equal(x.grad[:, 0, :2], w[:, :, :2].sum(1))  # every step's, to step 0
    assert torch.equal(x.grad[:, 1:, :2], torch.zeros(2, 3, 2))
    assert torch.equal(x.grad[:, :, 2], w[:, :, 2])


def test_feedback_runs_its_body_step_by_step_on_its_own_last_output():
    body = [{"lstm": {"units": 8, "layers": 2}}, {"dense": {"units": 4}}, "tanh"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_network({"layers": [{"feedback": {"layers": body}}]}, (6, 3), "g")
    fb = net.layers[0]
    assert fb.body.layers[0].rnn.input_size == 3 + 4  # the latent and the last output
    x = torch.randn(5, 6, 3)
    out = net(x)
    # the same by hand: one step of the stacked LSTM at a time, the head on its output
    rnn, dense = fb.body.layers[0].rnn, fb.body.layers[1]
    prev, state, ref = torch.zeros(5, 1, 4), None, []
    for t in range(6):
        h, state = rnn(torch.cat([x[:, t:t + 1], prev], -1), state)
        prev = torch.tanh(dense(h))
        ref.append(prev)
    torch.testing.assert_close(out, torch.cat(ref, 1))
    # causal: changing the latent from step 3 on leaves steps 0-2 as they were
    later = x.clone()
    later[:, 3:] += 1.0
    changed = net(later)
    assert torch.equal(changed[:, :3], out[:, :3]) and not torch.equal(changed[:, 3:], out[:, 3:])
    # the fed-back output matters: cutting the LSTM's weights on it changes every later step
    with torch.no_grad():
        rnn.weight_ih_l0[:, 3:] = 0
    cut = net(x)
    assert torch.equal(cut[:, 0], out[:, 0])  # step 0 was fed zeros anyway
    assert (cut[:, 1:] - out[:, 1:]).abs().amin(dim=(0, 2)).gt(0).all()


def test_feedback_teacher_forced_nll_equals_stepping_on_the_real_previous_step():
    """The likelihood term (objective.likelihood): step t reads the latent at t and the real
    one-hot at t-1; its value is the per-span cross entropy of the logits before the Gumbel
    noise, averaged over samples and steps and summed over spans. Checked against the body
    run one step at a time by hand with the real notes fed back."""
    spans = [5, 3]
    body = [{"lstm": {"units": 8, "layers": 2}}, {"dense": {"units": 8}},
            {"span_softmax": {"spans": spans, "tau": 0.2}}]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_network({"layers": [{"dense": {"units": 4}},
                                        {"feedback": {"layers": body}}]}, (6, 3), "g")
    z = torch.randn(7, 6, 3)
    idx = torch.stack([torch.randint(0, 5, (7, 6)), torch.randint(0, 3, (7, 6))], -1)
    real = torch.cat([torch.eye(5)[idx[..., 0]], torch.eye(3)[idx[..., 1]]], -1)
    nll = teacher_forced_nll(net, z, real)
    fb = net.layers[1]
    rnn, dense = fb.body.layers[0].rnn, fb.body.layers[1]
    h_in = net.layers[0](z)
    prev, state, total = torch.zeros(7, 1, 8), None, torch.zeros(())
    for t in range(6):
        h, state = rnn(torch.cat([h_in[:, t:t + 1], prev], -1), state)
        logits = dense(h)[:, 0]
        for k, (lo, w) in enumerate(((0, 5), (5, 3))):
            logp = torch.log_softmax(logits[:, lo:lo + w], -1)
            total = total - logp.gather(1, idx[:, t, k:k + 1]).mean() / 6
        prev = real[:, t:t + 1]
    torch.testing.assert_close(nll, total)
    assert 2.0 < nll.item() < 4.0  # untrained: near log 5 + log 3 = 2.71
    nll.backward()  # a gradient reaches the layers before the feedback layer
    assert net.layers[0].weight.grad.abs().sum() > 0
    with pytest.raises(SpecError, match="last layer is feedback"):
        teacher_forced_nll(build_network({"layers": [{"dense": {"units": 8}}]}, (6, 3), "g"),
                           z, real)


def test_feedback_says_what_its_body_must_be():
    for body, msg in (([{"dense": {"units": 4}}], "must start with an lstm or gru"),
                      ([{"lstm": {"units": 4, "bidirectional": True}}], "forward only"),
                      ([{"lstm": {"units": 4}}, "flatten"], "per-step layers"),
                      ([], "non-empty list")):
        with pytest.raises(SpecError, match=msg):
            build_network({"layers": [{"feedback": {"layers": body}}]}, (6, 3), "g")
    for extra, msg in (({"recall": -1}, "recall must be an integer >= 0"),
                       ({"recall": 2, "recall_dim": 0}, "recall_dim must be an integer >= 1"),
                       ({"recall": 2, "recall_context": 0},
                        "recall_context must be an integer >= 1")):
        with pytest.raises(SpecError, match=msg):
            build_network({"layers": [{"feedback": {"layers": [{"lstm": {"units": 4}}], **extra}}]},
                          (6, 3), "g")


def _recall_net(recall, units=16, vocab=8, steps=16, recall_dim=8, context=1):
    body = [{"lstm": {"units": units}}, {"dense": {"units": vocab}},
            {"span_softmax": {"spans": [vocab], "tau": 0.2, "hard": True}}]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_network({"layers": [{"feedback": {"layers": body, "recall": recall,
                                                       "recall_dim": recall_dim,
                                                       "recall_context": context}}]},
                             (steps, 2), "g")


def _nll_after_training(net, batch, first, steps=300):
    """Trains ``net`` (a :func:`_recall_net`) by the likelihood alone on ``batch(g)`` (one-hot
    sequences of 24 steps) for ``steps`` Adam steps at lr 0.02, then returns its teacher-forced
    NLL per step (nats) on 256 fresh sequences from step ``first`` on."""
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        loss = teacher_forced_nll(net, torch.zeros(64, 24, 2), batch(g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    fb, x = net.layers[0], batch(torch.Generator().manual_seed(99), 256)
    with torch.no_grad():
        prev = torch.cat([torch.zeros(256, 1, x.shape[-1]), x[:, :-1]], 1)
        h = fb.body.layers[0].rnn(torch.cat([torch.zeros(256, 24, 2), prev], -1))[0]
        if fb.recall is not None:
            h = fb.recall.sequence(h, x)
        logp = torch.log_softmax(fb.body.layers[1](h), -1)
    return -(logp * x).sum(-1)[:, first:].mean().item()


@pytest.mark.parametrize("recall, context", [(0, 1), (2, 1), (2, 3)])
def test_feedback_teacher_forced_nll_scores_what_stepping_drew(recall, context):
    """Stepping draws one-hot notes from the body's logits and feeds each back; reading those
    same notes with teacher forcing (the likelihood term, with recall's attention masked to
    earlier steps) must give the logits stepping saw, so its NLL is the mean -log p stepping
    gave its own draws. With ``recall_context`` 3 the last three notes must reach the query in
    the same order both ways."""
    net = _recall_net(recall, context=context)
    dense = net.layers[0].body.layers[1]
    seen = []
    handle = dense.register_forward_hook(lambda m, i, o: seen.append(o))
    z = torch.randn(5, 16, 2)
    with torch.no_grad():
        drawn = net(z)
    handle.remove()
    assert drawn.amax(-1).gt(0.999).all() and drawn.sum(-1).sub(1).abs().lt(1e-5).all()  # one-hot
    logits = torch.cat(seen, dim=1)
    by_hand = -(torch.log_softmax(logits, -1) * drawn).sum(-1).mean()
    torch.testing.assert_close(teacher_forced_nll(net, z, drawn), by_hand)
    if recall:  # causal: changing notes from step 9 on leaves the likelihood of steps <= 9
        late = drawn.clone()
        late[:, 9:] = late[:, 9:].roll(1, dims=-1)
        fb = net.layers[0]
        rnn = fb.body.layers[0].rnn

        def states(target):
            prev = torch.cat([torch.zeros(5, 1, 8), target[:, :-1]], 1)
            return fb.recall.sequence(rnn(torch.cat([z, prev], -1))[0], target)

        with torch.no_grad():
            a, b = states(drawn), states(late)
        torch.testing.assert_close(a[:, :10], b[:, :10])
        assert (a[:, 10:] - b[:, 10:]).abs().amax() > 1e-4


def test_recall_learns_to_repeat_a_motif_an_lstm_state_alone_does_not():
    """Sequences of 24 notes: 12 different notes of 16 in a random order, then the same 12
    again. The repeat is fully determined by the first half: recall finds where the last note
    stood and reads the one after it. Trained by the likelihood alone for the same 300 steps,
    the body with one recall head predicts the repeat (steps 13-23) with under half the NLL
    of the same 16-unit LSTM without it, which has to hold the 12 notes in its state."""
    def batch(g, n=64):
        first = torch.argsort(torch.rand(n, 16, generator=g), dim=1)[:, :12]
        return torch.eye(16)[torch.cat([first, first], 1)]

    repeat_nll = {recall: _nll_after_training(
        _recall_net(recall, units=16, vocab=16, steps=24, recall_dim=16), batch, first=13)
        for recall in (0, 1)}
    assert repeat_nll[0] > 1.2, repeat_nll  # the LSTM alone: far from certain
    assert repeat_nll[1] < 0.5 * repeat_nll[0], repeat_nll


def test_recall_context_matches_phrases_where_one_note_is_ambiguous():
    """Sequences of 24 notes: 12 drawn from only 4 with replacement, then the same 12 again.
    Each note stands ~3 times in the first half, so the last note alone does not say where the
    repeat stands; the last three mostly do. With a state too small to carry three notes (2
    units; at 8 units both settings learn the task), after the same 300 likelihood steps recall
    whose queries and keys see the last 3 notes (``recall_context: 3``) predicts the repeat
    (steps 15-23, where three repeated notes precede) with under half the NLL of recall on the
    last note and the state (measured: 0.16 vs 0.78 nats)."""
    def batch(g, n=64):
        first = torch.randint(0, 4, (n, 12), generator=g)
        return torch.eye(4)[torch.cat([first, first], 1)]

    repeat_nll = {context: _nll_after_training(
        _recall_net(1, units=2, vocab=4, steps=24, recall_dim=16, context=context), batch,
        first=15) for context in (1, 3)}
    assert repeat_nll[1] > 0.5, repeat_nll  # ln 4 = 1.39 knows nothing
    assert repeat_nll[3] < 0.5 * repeat_nll[1], repeat_nll


def test_intervals_layer_appends_the_step_between_consecutive_pitches():
    net = build_network({"layers": [{"intervals": {"spans": [9, 2], "span": 0, "max": 3}}]},
                        (5, 11), "d")
    pitch = np.array([[0, 1, 5, 3, 3], [8, 0, 2, 1, 4]])
    x = torch.cat([torch.eye(9)[pitch], torch.eye(2)[pitch % 2]], -1).float()
    out = net(x)
    assert out.shape == (2, 5, 11 + 7) and torch.equal(out[..., :11], x)
    bins = out[..., 11:].numpy()
    assert np.all(bins[:, 0] == 0)  # step 0 has no previous note
    step = np.clip(np.diff(pitch, axis=1), -3, 3)  # by hand: beyond max -> outermost bin
    np.testing.assert_array_equal(bins[:, 1:], np.eye(7)[step + 3])
    # a generator's softmax: its expected pitch, spread over the two nearest bins, with a gradient
    soft = torch.zeros(1, 2, 11)
    soft[0, 0, 2], soft[0, 1, 4], soft[0, 1, 5] = 1.0, 0.75, 0.25  # 2 -> E = 4.25: +2.25
    soft.requires_grad_(True)
    got = net(soft)[0, 1, 11:]
    torch.testing.assert_close(got, torch.tensor([0, 0, 0, 0, 0, 0.75, 0.25]))
    got[6].backward()
    assert soft.grad[0, 1, 5] > 0 and soft.grad[0, 0, 2] < 0
    for spec, msg in (({"spans": [9, 2], "span": 2}, "index of one of the 2 spans"),
                      ({"spans": [9, 3]}, "add up to 12"), ({"spans": [9, 2], "max": 0}, ">= 1")):
        with pytest.raises(SpecError, match=msg):
            build_network({"layers": [{"intervals": spec}]}, (5, 11), "d")


def test_spectral_norm_layer_has_unit_top_singular_value():
    with torch.random.fork_rng(devices=[]):  # seeded init and power-iteration start
        torch.manual_seed(0)
        net = build_network({"layers": [{"dense": {"units": 16, "spectral_norm": True}}]},
                            (32,), "d")
        net.train()
        for _ in range(30):  # power iterations run in training forwards
            net(torch.randn(4, 32))
    w = net.layers[0].weight
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.02)


def test_whole_network_spectral_norm_and_summary():
    spec = {"spectral_norm": True, "layers": [{"dense": {"units": 8}}, "relu", {"dense": {"units": 1}}]}
    net = build_network(spec, (4,), "discriminator")
    text = summary(net)
    assert text.count("[sn]") == 2
    # params: (4*8+8) + (8*1+1) = 49
    assert "total params: 49" in text


def test_dcgan_mnist_matches_tensorflow_tutorial_parameter_counts():
    cfg = load_config("dcgan-mnist")
    g = build_network(cfg.generator.model_dump(), (100,), "generator")
    d = build_network(cfg.discriminator.model_dump(), (1, 28, 28), "discriminator")
    # Trainable parameters of the TF tutorial's make_generator_model / make_discriminator_model.
    assert sum(p.numel() for p in g.parameters()) == 2_305_472
    assert sum(p.numel() for p in d.parameters()) == 212_865


def test_wrong_generator_output_names_the_spec_path():
    g = {"layers": [{"dense": {"units": 7 * 7 * 8}}, {"reshape": {"shape": [8, 7, 7]}},
                    {"conv_transpose2d": {"filters": 4, "kernel": 4, "stride": 2}},
                    {"conv_transpose2d": {"filters": 1, "kernel": 3, "stride": 2,
                                          "padding": "valid"}}]}
    d = {"layers": ["flatten", {"dense": {"units": 1}}]}
    with pytest.raises(SpecError) as e:
        validate_gan(g, d, (10,), (1, 28, 28))
    assert "generator.layers[3] (conv_transpose2d): output 1x29x29, data is 1x28x28" in str(e.value)


def test_discriminator_must_output_one_logit():
    g = {"layers": [{"dense": {"units": 2}}]}
    with pytest.raises(SpecError, match=r"discriminator.layers\[0\] \(dense\): output 3"):
        validate_gan(g, {"layers": [{"dense": {"units": 3}}]}, (4,), (2,))


@pytest.mark.parametrize("layers,message", [
    ([{"dens": {"units": 3}}], r"layers\[0\]: unknown layer type 'dens'.*Did you mean 'dense'"),
    ([{"dense": {"unit": 3}}], r"layers\[0\] \(dense\): unknown argument 'unit'.*'units'"),
    ([{"dense": {}}], r"layers\[0\] \(dense\): missing required argument 'units'"),
    (["flatten", {"conv2d": {"filters": 3}}], r"layers\[1\] \(conv2d\): needs an image"),
    ([{"reshape": {"shape": [3, 3]}}], r"layers\[0\] \(reshape\): cannot reshape 2x2 \(4 values\) to 3x3"),
    (["relu", {"relu": {"spectral_norm": True}}], r"layers\[1\] \(relu\): spectral_norm applies"),
    ([{"upsample": {"mode": "cubic"}}], r"mode must be one of"),
    ([{"dropout": {"p": 1.5}}], r"p must be in \[0, 1\)"),
    ([{"repeat": {"times": 0}}], r"layers\[0\] \(repeat\): repeat needs times: a whole number"),
    ([{"repeat": {"times": 2}}, {"repeat": {"times": 2}}],
     r"layers\[1\] \(repeat\): needs a vector \(d,\) input, got shape 2x4"),
    ([], r"net.layers must be a non-empty list"),
])
def test_bad_specs_fail_with_path(layers, message):
    shape = (2, 2) if layers and _name(layers[0]) == "reshape" else (4,)
    if layers and _name(layers[0]) == "upsample":
        shape = (1, 4, 4)
    with pytest.raises(SpecError, match=message):
        plan_network({"layers": layers}, shape, "net")
