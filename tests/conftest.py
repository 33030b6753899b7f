import os

import pytest
import torch

# One intra-op thread, fixed for the whole session, so results do not depend on the machine or
# on test order. The suite's numeric bounds were measured this way: until 2026-12-02 a module
# of the suite set one thread at import, which (unintended) held for every test.
THREADS = os.environ.get("GANFORGE_TEST_THREADS", "1")
torch.set_num_threads(int(THREADS))
# train.threads: auto reads the threads a run may use from OMP_NUM_THREADS: the same count, so
# no Trainer changes it for the tests after it
os.environ["OMP_NUM_THREADS"] = THREADS


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture
def two_threads(monkeypatch):
    """Two intra-op threads for one long conv-net test (1.5-1.6x faster on 2 cores than one),
    restored after; the test checks its bounds at this count and says where its quoted numbers
    were measured."""
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One intra-op thread for a test, restored after: CPU results depend on the thread count
    (the summation order of a matmul), and subprocess workers run with one thread each."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
