"""ganforge: design, train, watch and judge Generative Adversarial Networks."""

from ganforge.api import Run, load, load_config, train
from ganforge.config import RunConfig, list_presets
from ganforge.errors import GanforgeError
from ganforge.estimator import GAN, TableGAN
from ganforge.version import __version__

__all__ = ["GAN", "GanforgeError", "Run", "RunConfig", "TableGAN", "__version__", "list_presets",
           "load", "load_config", "train"]
