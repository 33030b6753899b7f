"""Layer vocabulary, spec -> nn.Module builder, shape inference and summary tables.

Knows nothing of training."""

from ganforge.architecture import layers_image  # noqa: F401  (residual, reflection_pad, unet)
from ganforge.architecture.builder import (
                                           SpecNet,
                                           build_network,
                                           count_params,
                                           plan_network,
                                           summary,
                                           validate_gan,
)
from ganforge.architecture.layers import LAYERS, register_layer

__all__ = ["LAYERS", "SpecNet", "build_network", "count_params", "plan_network",
           "register_layer", "summary", "validate_gan"]

# more layer types (minibatch_discrimination, minibatch_stddev, maxout) register on import,
# and feedback (an autoregressive recurrent body)
from ganforge.architecture import layers_seq, layers_stats  # noqa: F401
