"""A sweep's rates are tasks of the campaign's engine (cluster.py): rates trained side by side on a
LocalCluster give the record that plain training gives, one rate at a time, and the command takes
the campaign's engine options."""

from dataclasses import fields

import pytest

from seqmnist import cluster
from seqmnist.__main__ import _engine_options, build_parser
from seqmnist.errors import ConfigError
from seqmnist.sweep import candidate_command, sweep
from seqmnist.train import TrainConfig, train

TINY = dict(batch_size=16, train_size=64, val_size=32, warmup_steps=1)
TIMINGS = ("samples_per_s", "epoch_seconds", "wall_seconds")   # the only fields that may differ


def without_timings(record: dict) -> list:
    return [{**candidate, "history": [{k: v for k, v in epoch.items() if k not in TIMINGS}
                                      for epoch in candidate["history"]]}
            for candidate in record["candidates"]]


def test_rates_trained_side_by_side_give_the_record_of_one_rate_at_a_time(tmp_path, mnist):
    """Two rates on two single-thread workers at once give the candidates (configs, histories,
    best scores) and the best rate that plain ``train`` gives, one rate after the other."""
    record = sweep("predict", "gru-1x4", rates=(1e-3, 3e-2), epochs=2, out_dir=tmp_path / "sweep",
                   workers=2, threads=1, **TINY)
    in_turn = []
    for lr in (1e-3, 3e-2):
        config = TrainConfig(task="predict", arch="gru-1x4", epochs=2, lr=lr, **TINY)
        state = train(config, tmp_path / f"plain-{lr:g}", progress=False, mnist=mnist)
        in_turn.append({"lr": lr, "config": config.to_dict(), "history": state.history,
                        "best_val_loss": state.best_validation["loss"],
                        "best_validation": state.best_validation})
    assert all(len(candidate["history"]) == 2 for candidate in in_turn)
    assert without_timings(record) == without_timings({"candidates": in_turn})
    assert record["best_lr"] == min(in_turn, key=lambda c: c["best_val_loss"])["lr"]
    assert not (tmp_path / "sweep" / "runs").exists()


def test_a_rates_task_trains_exactly_the_candidates_config(tmp_path):
    """The task's command line (``sweep --candidate-dir``) parses back to the candidate's config,
    every float exact."""
    config = TrainConfig(task="classify", arch="lstm-1x8", epochs=3, lr=0.1 + 0.2, dropout=1 / 3,
                         shift=2, select="accuracy", min_lr_ratio=0.017, seed=4, train_size=96)
    args = build_parser().parse_args(candidate_command(config, tmp_path / "run", "cpu", False))
    parsed = TrainConfig(task=args.task, arch=args.arch, epochs=args.epochs, lr=args.lrs[0],
                         **{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                            if f.name not in ("task", "arch", "epochs", "lr")})
    assert parsed == config
    assert (args.candidate_dir, args.device, args.quiet) == (str(tmp_path / "run"), "cpu", True)


def test_sweep_and_campaign_take_the_same_engine_options(tmp_path):
    engine = ["--threads", "2", "--retries", "1", "--slurm", "--queue", "gpu", "--jobs", "3",
              "--gpus-per-job", "2", "--cpus-per-job", "16", "--memory-per-job", "64GB",
              "--walltime", "01:00:00", "--gpu-slots", "8", "--device", "cuda"]
    parser = build_parser()
    swept = _engine_options(parser.parse_args(["sweep", "classify", "lstm-1x8", *engine]))
    campaign = _engine_options(parser.parse_args(["campaign", "run", *engine]))
    slurm = cluster.SlurmJobs(jobs=3, queue="gpu", gpus=2, cpus=16, memory="64GB",
                              walltime="01:00:00")
    assert swept == {**campaign, "workers": 1} and swept["slurm"] == slurm
    assert campaign["workers"] == 2 and swept["threads"] == 2 and swept["gpu_slots"] == 8
    with pytest.raises(ConfigError, match="workers and threads"):
        sweep("classify", "lstm-1x8", rates=(1e-3,), epochs=1, out_dir=tmp_path, threads=0)
