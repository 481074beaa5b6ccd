"""Population axes spread over devices: a one-axis mesh, padding and sharded calls.

Candidates of a generation, and front members in fine-tuning, are independent
of each other, so their leading axis is split over the devices of a
`jax.sharding.Mesh` with one axis named `POPULATION`. The JAT's variables and
the data batches are replicated on every device. Each device runs the same
vmapped function on its slice, and no values cross devices except the small
outputs that are gathered at the end. A population whose size does not divide
by the device count is padded with copies of its first row, and the padding is
dropped from the results.

With several processes (hosts), `initialize_distributed` starts JAX's
multi-controller runtime, `jax.devices()` then lists every host's devices, and
the mesh spans all of them. Every process must run the same program on the
same data.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

#: Name of the mesh axis that candidates and members are split over.
POPULATION = "population"


def initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Start `jax.distributed` when the environment describes a multi-process job.

    Recognized environments, checked in this order:

    - `JAX_COORDINATOR_ADDRESS` (host:port of process 0), with
      `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`;
    - SLURM with more than one task (`SLURM_JOB_ID` and `SLURM_NTASKS` > 1);
    - Open MPI (`OMPI_MCA_orte_hnp_uri`).

    For the last two, JAX reads the coordinator, process count and process id
    from the cluster's own variables. Must run before any other JAX call
    creates a backend. Returns True when the runtime was started here, False
    when the environment is a single process or the runtime already runs.
    """
    environ = os.environ if environ is None else environ
    if jax.distributed.is_initialized():
        return False

    address = environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        missing = [name for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if not environ.get(name)]
        if missing:
            raise ValueError(
                f"JAX_COORDINATOR_ADDRESS is set to {address!r} but {' and '.join(missing)} "
                "is not set; set JAX_NUM_PROCESSES to the number of processes and JAX_PROCESS_ID "
                "to this process's index (0 on the coordinator's host)."
            )
        num_processes, process_id = int(environ["JAX_NUM_PROCESSES"]), int(environ["JAX_PROCESS_ID"])
        log.info("Starting jax.distributed: process %d of %d, coordinator %s.", process_id, num_processes, address)
        jax.distributed.initialize(address, num_processes=num_processes, process_id=process_id)
        return True

    slurm = "SLURM_JOB_ID" in environ and int(environ.get("SLURM_NTASKS", "1")) > 1
    if slurm or "OMPI_MCA_orte_hnp_uri" in environ:
        log.info("Starting jax.distributed from the %s environment.", "SLURM" if slurm else "Open MPI")
        jax.distributed.initialize()
        return True
    return False


def make_mesh(devices: int = 0) -> Mesh:
    """Return a one-axis mesh named `POPULATION` over the first `devices` devices.

    `devices = 0` takes every device of every process. With several processes
    only 0 or the total device count is accepted, because a mesh must hold
    every process's devices.
    """
    available = jax.devices()
    if devices < 0 or devices > len(available):
        raise ValueError(f"devices = {devices} is invalid: this run sees {len(available)} devices; use 0 for all or a count from 1 to {len(available)}.")
    if jax.process_count() > 1 and devices not in (0, len(available)):
        raise ValueError(
            f"devices = {devices} is invalid with {jax.process_count()} processes: the mesh must span all "
            f"{len(available)} devices; use 0."
        )
    chosen = available[: devices or len(available)]
    return Mesh(np.asarray(chosen), (POPULATION,))


def population_mesh(devices: int = 0) -> Mesh | None:
    """Return `make_mesh(devices)`, or None when it would hold one device.

    None selects the unsharded code path, which computes the same results
    without the mesh's padding and gathering.
    """
    mesh = make_mesh(devices)
    return mesh if mesh_size(mesh) > 1 else None


def mesh_size(mesh: Mesh) -> int:
    return mesh.shape[POPULATION]


def padded_size(count: int, mesh: Mesh) -> int:
    """Return the smallest multiple of the mesh's device count that holds `count` rows."""
    size = mesh_size(mesh)
    return -(-count // size) * size


def pad_rows(tree: Any, size: int) -> Any:
    """Extend every leaf's leading axis to `size` with copies of its first row."""

    def pad(leaf):
        count = leaf.shape[0]
        if count == size:
            return leaf
        filler = jnp.broadcast_to(leaf[:1], (size - count,) + leaf.shape[1:])
        return jnp.concatenate([leaf, filler])

    return jax.tree.map(pad, tree)


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Place a copy of every leaf on every device of the mesh.

    Works with several processes too: each process supplies its own copy of
    the (identical) values, and the result is one global array per leaf.
    """
    sharding = NamedSharding(mesh, PartitionSpec())

    def put(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def shard_rows(mesh: Mesh, tree: Any) -> Any:
    """Split every leaf's leading axis over the mesh; the axis must divide evenly.

    Each process supplies the full (identical) array and keeps the rows of its
    own devices.
    """
    sharding = NamedSharding(mesh, PartitionSpec(POPULATION))

    def put(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def gather_rows(mesh: Mesh, tree: Any) -> Any:
    """Return the tree replicated on every device, so every process can read it whole."""
    return jax.jit(lambda t: t, out_shardings=NamedSharding(mesh, PartitionSpec()))(tree)


def map_rows(fn: Callable, mesh: Mesh, split: Sequence[bool], gather: bool | Sequence[bool] = True) -> Callable:
    """Run `fn` on each device's slice of the population.

    Args:
      fn: a function already vmapped over the leading axis of the arguments
        flagged in `split`; its outputs all have that leading axis.
      split: one flag per positional argument: True splits the argument's
        leading axis over the mesh, False replicates it.
      gather: True gathers every output on every device, so every process can
        read it whole. False leaves the outputs split over the mesh (for state
        that the next call takes split again). A sequence gives one flag per
        element of an output tuple.

    Returns a function with `fn`'s signature. The flagged arguments must have a
    leading axis that divides by the device count (see `pad_rows`).
    """
    in_specs = tuple(PartitionSpec(POPULATION) if s else PartitionSpec() for s in split)
    flags = gather if isinstance(gather, (tuple, list)) else None
    if flags is None:
        out_specs = PartitionSpec() if gather else PartitionSpec(POPULATION)
    else:
        out_specs = tuple(PartitionSpec() if g else PartitionSpec(POPULATION) for g in flags)

    def all_gather(tree):
        return jax.tree.map(lambda o: jax.lax.all_gather(o, POPULATION, tiled=True), tree)

    def local(*args):
        outputs = fn(*args)
        if flags is None:
            return all_gather(outputs) if gather else outputs
        return tuple(all_gather(o) if g else o for o, g in zip(outputs, flags))

    # shard_map cannot infer that an all_gather's result is the same on every
    # device, so its replication check is off.
    return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
