"""The multi-node wrapper's reading of OCI's rendezvous: rank, cluster size, and rank 0's address from the
nodes' metadata file; each mistake stops the node in one line naming the variable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from domain.errors import UserError
from domain.training_args import FineTuneArgs, job_command, parse_args
from training.multinode import Rendezvous, main, rendezvous, torchrun_command

NODES = [{"Rank": 1, "IPAddress": "10.0.1.8"}, {"Rank": 0, "IPAddress": "10.0.1.7"}]


def env_for(tmp_path: Path, rank: str = "1", size: str = "2", nodes: object = NODES) -> dict[str, str]:
    file = tmp_path / "nodes.json"
    if nodes is not None:
        file.write_text(json.dumps(nodes))
    return {"NODE_RANK": rank, "INITIAL_CLUSTER_SIZE": size, "CLUSTER_NODES_METADATA_FILE": str(file)}


def test_a_node_finds_rank_zero_and_starts_torchrun_with_it(tmp_path: Path) -> None:
    meeting = rendezvous(env_for(tmp_path), 2)
    assert meeting == Rendezvous(node_rank=1, nodes=2, master_addr="10.0.1.7", master_port=29400)
    command = torchrun_command(meeting, 4, ["--base-model", "b"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert command[3:] == [
        "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.1.7", "--master-port", "29400",
        "--nproc-per-node", "4", "-m", "training.finetune", "--base-model", "b",
    ]  # fmt: skip


def test_the_wrapper_waits_for_nodes_that_come_up_late(tmp_path: Path) -> None:
    env = env_for(tmp_path, nodes=NODES[:1])
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:  # the second node registers
            Path(env["CLUSTER_NODES_METADATA_FILE"]).write_text(json.dumps(NODES))

    assert rendezvous(env, 2, sleep=sleep).master_addr == "10.0.1.7" and naps == [5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"NODE_RANK": None}, "NODE_RANK is not set: this is not a node of a multi-node job run"),
        ({"INITIAL_CLUSTER_SIZE": "3"}, "INITIAL_CLUSTER_SIZE=3: the job was built for 2 nodes (--nnodes)"),
        ({"NODE_RANK": "2"}, "NODE_RANK=2: not below INITIAL_CLUSTER_SIZE=2"),
        ({"NODE_RANK": "one"}, "NODE_RANK='one': not a whole number"),
        ({"CLUSTER_NODES_METADATA_FILE": None}, "CLUSTER_NODES_METADATA_FILE is not set"),
    ],
)
def test_each_missing_or_wrong_variable_is_named(
    tmp_path: Path, changes: dict[str, str | None], message: str
) -> None:
    env = {k: v for k, v in {**env_for(tmp_path), **changes}.items() if v is not None}
    with pytest.raises(UserError) as caught:
        rendezvous(env, 2)
    assert str(caught.value).startswith(message)


def test_a_node_that_never_sees_the_others_stops_after_the_wait(tmp_path: Path) -> None:
    clock = iter(range(0, 10_000, 600))
    with pytest.raises(UserError, match=r"1 of 2 nodes after 1800 s$"):
        rendezvous(env_for(tmp_path, nodes=NODES[:1]), 2, sleep=lambda _: None, clock=lambda: next(clock))


def test_the_wrapper_exits_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NODE_RANK", raising=False)
    assert main(["--nnodes", "2", "--nproc-per-node", "1", "--", "--base-model", "b"]) == 2
    assert capsys.readouterr().err == (
        "multinode: error: NODE_RANK is not set: this is not a node of a multi-node job run\n"
    )


def test_the_job_command_for_several_nodes_runs_the_wrapper_with_the_same_arguments() -> None:
    args = FineTuneArgs(base_model="org/m", dataset="oci://d@ns/p", output="oci://o@ns/p", sharding="fsdp")
    command = job_command(args, gpus=8, nodes=2)
    assert command[:8] == [
        "python",
        "-m",
        "training.multinode",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "8",
        "--",
    ]
    assert parse_args(command[8:]) == args
    assert job_command(args, gpus=8)[:6] == [
        "torchrun",
        "--standalone",
        "--nproc-per-node",
        "8",
        "-m",
        "training.finetune",
    ]
