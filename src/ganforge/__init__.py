"""ganforge: design, train, watch and judge Generative Adversarial Networks."""

from ganforge.api import Run, load, train
from ganforge.config import RunConfig, list_presets, load_config
from ganforge.errors import GanforgeError

__version__ = "0.1.0"
__all__ = ["GanforgeError", "Run", "RunConfig", "list_presets", "load", "load_config", "train"]
