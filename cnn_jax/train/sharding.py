"""One code path for 1..N devices on 1..M hosts: ``jit`` + ``NamedSharding`` over a mesh.

Data parallel: a 1-D mesh over every device of every process, axis ``'data'``; the
batch is split along it and parameters are replicated. With one device the same code
runs with trivial shardings.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D data-parallel mesh over ``devices`` (default: all global devices)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that keeps a full copy on every device (parameters, small datasets)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) axis across the mesh."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, name: str = 'batch_size') -> None:
  """Raises unless the global batch splits evenly over the devices.

  Args:
    batch_size: global batch size.
    mesh: the data-parallel mesh.
    name: config field name, for the message.

  Raises:
    ValueError: naming the field, its value and the device count.
  """
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f'{name}={batch_size} is not divisible by the {n} devices of the mesh; '
                     f'use a multiple of {n} (e.g. {batch_size // n * n or n})')


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-host run when there is one; a no-op for single-process runs.

  A run is multi-host when ``coordinator_address`` is given, when
  ``JAX_COORDINATOR_ADDRESS`` is set, or when a SLURM or Open MPI launcher started
  several tasks; in the last two cases ``jax.distributed.initialize`` reads the rest
  from the environment.

  Args:
    coordinator_address: ``host:port`` of process 0.
    num_processes: total number of processes.
    process_id: this process's index.
  """
  launched = any(int(os.environ.get(var, '1')) > 1
                 for var in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'))
  if coordinator_address is None and 'JAX_COORDINATOR_ADDRESS' not in os.environ \
      and not launched:
    return
  # Cross-process collectives on CPU devices go through gloo; the setting only affects
  # the CPU client, and asking for the backend here would initialise it too early.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address, num_processes, process_id)
