"""data: offline datasets, synthetic tasks, continual-learning builders and batching.

Nothing is downloaded at run time. Loaders return ``dict(train=(x, y), test=(x, y))`` of
JAX arrays (x float32, y int32); generators take an explicit PRNG key.
"""

from jaxopt_lab.data.batching import batch_indices, batches, num_examples, sample_batch
from jaxopt_lab.data.continual import permutations, permuted_tasks, split_tasks
from jaxopt_lab.data.digits import load_digits
from jaxopt_lab.data.fashion_mnist import load_fashion_mnist
from jaxopt_lab.data.mnist1d import load_mnist1d
from jaxopt_lab.data.sequences import adding_problem, copy_task
from jaxopt_lab.data.synthetic import GaussianMixture, grid, nearest_mode, ring

__all__ = [
    "GaussianMixture",
    "adding_problem",
    "batch_indices",
    "batches",
    "copy_task",
    "grid",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist1d",
    "nearest_mode",
    "num_examples",
    "permutations",
    "permuted_tasks",
    "ring",
    "sample_batch",
    "split_tasks",
]
