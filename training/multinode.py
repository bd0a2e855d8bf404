"""Start torchrun on one node of an OCI Data Science multi-node job run.

`python -m training.multinode --nnodes N --nproc-per-node G [--master-port P] -- <training.finetune flags>`

OCI starts the same command on every node of the job's node group and tells each node, in its environment
(Oracle's "Job Environment Variables", distributed jobs):

- `NODE_RANK`: this node's rank, 0 to nodes - 1;
- `INITIAL_CLUSTER_SIZE`: how many nodes the run started with;
- `CLUSTER_NODES_METADATA_FILE`: a JSON list `[{"Rank": 0, "IPAddress": "10.0.1.7"}, ...]`, filled in as the
  nodes come up (ADS's `driver_pytorch.py` reads it the same way and waits for it).

There is no MASTER_ADDR: the address of rank 0 comes from that file. This wrapper waits until the file lists
every node, then replaces itself with `torchrun --nnodes N --node-rank R --master-addr <rank 0>
--master-port 29400 --nproc-per-node G -m training.finetune ...` (torchrun's static rendezvous: rank 0
hosts the store, the others connect to it). Anything missing or inconsistent stops the node with one line
naming the variable, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.errors import UserError

NODE_RANK = "NODE_RANK"
CLUSTER_SIZE = "INITIAL_CLUSTER_SIZE"
METADATA_FILE = "CLUSTER_NODES_METADATA_FILE"
MASTER_PORT = 29400  # the port ADS's driver uses for the rendezvous
WAIT_SECONDS = 1800.0  # nodes of one run can start minutes apart (GPU capacity, image pulls)
POLL_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class Rendezvous:
    node_rank: int
    nodes: int
    master_addr: str
    master_port: int = MASTER_PORT


def _whole(env: Mapping[str, str], key: str, low: int) -> int:
    value = env.get(key)
    if value is None:
        raise UserError(f"{key} is not set: this is not a node of a multi-node job run")
    try:
        number = int(value)
    except ValueError:
        raise UserError(f"{key}={value!r}: not a whole number") from None
    if number < low:
        raise UserError(f"{key}={value!r}: below {low}")
    return number


def read_nodes(path: Path) -> dict[int, str] | None:
    """Rank -> IP address from the metadata file, or None while it is missing or half written."""
    try:
        nodes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(nodes, list):
        return None
    found: dict[int, str] = {}
    for node in nodes:
        if isinstance(node, dict) and "Rank" in node and isinstance(node.get("IPAddress"), str):
            try:
                found[int(node["Rank"])] = node["IPAddress"]
            except (TypeError, ValueError):
                return None
    return found


def rendezvous(
    env: Mapping[str, str],
    nnodes: int,
    *,
    wait_seconds: float = WAIT_SECONDS,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Rendezvous:
    """This node's rank and the address of rank 0, once the metadata file lists every node."""
    rank = _whole(env, NODE_RANK, 0)
    size = _whole(env, CLUSTER_SIZE, 1)
    if size != nnodes:
        raise UserError(f"{CLUSTER_SIZE}={size}: the job was built for {nnodes} nodes (--nnodes)")
    if rank >= size:
        raise UserError(f"{NODE_RANK}={rank}: not below {CLUSTER_SIZE}={size}")
    file = env.get(METADATA_FILE)
    if not file:
        raise UserError(f"{METADATA_FILE} is not set: OCI gives it to every node of a multi-node job run")
    deadline = clock() + wait_seconds
    while True:
        nodes = read_nodes(Path(file))
        if nodes is not None and len(nodes) >= size and 0 in nodes:
            return Rendezvous(node_rank=rank, nodes=size, master_addr=nodes[0])
        if clock() >= deadline:
            seen = "no readable list" if nodes is None else f"{len(nodes)} of {size} nodes"
            raise UserError(f"{METADATA_FILE}={file}: {seen} after {wait_seconds:g} s")
        sleep(poll_seconds)


def torchrun_command(meeting: Rendezvous, nproc_per_node: int, finetune_argv: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(meeting.nodes),
        "--node-rank",
        str(meeting.node_rank),
        "--master-addr",
        meeting.master_addr,
        "--master-port",
        str(meeting.master_port),
        "--nproc-per-node",
        str(nproc_per_node),
        "-m",
        "training.finetune",
        *finetune_argv,
    ]


def parse(argv: Sequence[str]) -> tuple[int, int, int, list[str]]:
    argv = list(argv)
    if "--" not in argv:
        raise UserError(
            "usage: python -m training.multinode --nnodes N --nproc-per-node G -- <finetune flags>"
        )
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m training.multinode", allow_abbrev=False)
    parser.add_argument("--nnodes", type=int, required=True)
    parser.add_argument("--nproc-per-node", type=int, required=True)
    parser.add_argument("--master-port", type=int, default=MASTER_PORT)
    try:
        ours = parser.parse_args(argv[:split])
    except SystemExit:
        raise UserError("usage: --nnodes N --nproc-per-node G -- <finetune flags>") from None
    if ours.nnodes < 1 or ours.nproc_per_node < 1:
        raise UserError("--nnodes and --nproc-per-node: give whole numbers of at least 1")
    return ours.nnodes, ours.nproc_per_node, ours.master_port, argv[split + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        nnodes, nproc, port, rest = parse(sys.argv[1:] if argv is None else argv)
        meeting = dataclasses.replace(rendezvous(os.environ, nnodes), master_port=port)
    except UserError as exc:
        print(f"multinode: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    command = torchrun_command(meeting, nproc, rest)
    print(
        f"multinode: node {meeting.node_rank} of {meeting.nodes}, rank 0 at "
        f"{meeting.master_addr}:{meeting.master_port}",
        flush=True,
    )
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
