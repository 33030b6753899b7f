import os

import pytest
import torch

# Two cores: keep intra-op threads fixed so timings and results are stable.
torch.set_num_threads(int(os.environ.get("GANFORGE_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
