"""ganforge: design, train, watch and judge Generative Adversarial Networks."""

from ganforge.api import Run, load, load_config, train
from ganforge.config import RunConfig, list_presets
from ganforge.errors import GanforgeError
from ganforge.version import __version__

__all__ = ["GanforgeError", "Run", "RunConfig", "__version__", "list_presets", "load", "load_config",
           "train"]
