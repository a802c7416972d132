"""models: Flax NNX networks exposed as pure ``init`` / ``apply`` / ``loss`` functions.

Every builder returns a :class:`Model` whose ``init(key)`` gives a plain nested dict of
arrays grouped per layer (``layers_0``, ``layers_1``, ..., ``out``; recurrent nets use
``cell`` and ``out``). ``jax.vmap(model.init)(keys)`` initializes many seeds in one call.
"""

from jaxopt_lab.models.cnn import cnn
from jaxopt_lab.models.core import (
    ACTIVATIONS,
    INITS,
    LOSSES,
    Model,
    kernel_initializer,
    layer_names,
    layer_norms,
    loss_fn,
    make_model,
    param_count,
)
from jaxopt_lab.models.mlp import mlp
from jaxopt_lab.models.rnn import gru, lstm, recurrent_initializer, rnn

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LOSSES",
    "Model",
    "cnn",
    "gru",
    "lstm",
    "kernel_initializer",
    "layer_names",
    "layer_norms",
    "loss_fn",
    "make_model",
    "mlp",
    "param_count",
    "recurrent_initializer",
    "rnn",
]
