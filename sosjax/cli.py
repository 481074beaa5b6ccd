"""The `sosjax` command line: a thin layer over `sosjax.pipeline` and `sosjax.export`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sosjax",
        description="Evolve a Set of Sets: Pareto fronts of compact specialists from one pretrained generalist.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run the main job (resumes an existing workdir)",
        description="Pretrain or load the JAT, evolve, fine-tune and export a Set of Sets. "
        "Override any config field with --config.FIELD=VALUE, for example --config.evolution.generations=50.",
    )
    run.add_argument("--config", default=None, help="config file, optionally FILE:ARG (default: configs/digits_resnet18.py)")
    run.add_argument("--workdir", default=os.path.join("runs", "digits"), help="run folder (default: runs/digits)")
    run.add_argument("--force", action="store_true", help="continue a workdir whose config.json differs from this config")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--devices", type=int, default=None,
                     help="devices to split the population over: 0 for all, N for the first N (default: the config's devices field)")

    select = commands.add_parser("select", help="print the best member of a task within a size budget, as JSON")
    select.add_argument("--workdir", required=True, help="run folder written by `sosjax run`")
    select.add_argument("--task", required=True, help="task name, for example even")
    budget = select.add_mutually_exclusive_group(required=True)
    budget.add_argument("--max-params", type=_positive_int, help="largest number of parameters allowed")
    budget.add_argument("--max-bytes", type=_positive_int, help="largest model size in bytes allowed, at --dtype")
    select.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="dtype for --max-bytes (default: float32)")

    report = commands.add_parser("report", help="rebuild the tables and plots of a run folder")
    report.add_argument("--workdir", required=True, help="run folder written by `sosjax run`")

    compare = commands.add_parser(
        "compare",
        help="compare MO-MFEA, MO-MFEA-II and the single-task baseline over many seeds",
        description="Evolve every algorithm on every seed from the same JAT, initial populations and fitness batches, "
        "seeds vmapped in one jitted program, and write comparison.json, comparison.md and comparison.png. "
        "Override any config field with --config.FIELD=VALUE.",
    )
    compare.add_argument("--config", default=None, help="config file, optionally FILE:ARG (default: configs/digits_resnet18.py)")
    compare.add_argument("--workdir", required=True, help="comparison folder; a JAT already in its checkpoints/jat is reused")
    compare.add_argument("--seeds", type=int, default=10, help="number of seeds, config.seed onwards (default: 10)")
    compare.add_argument("--algorithms", default="momfea,momfea2,single",
                         help="comma-separated algorithms among momfea, momfea2, single (default: all three)")
    compare.add_argument("--sweep", default=None,
                         help="evolution.FIELD=v1,v2,... runs one variant per value instead of --algorithms, "
                         "FIELD one of rmp, learn_rmp, crossover, mutation_rate, p_min")
    compare.add_argument("--seed-chunk", type=int, default=0, help="seeds per vmapped chunk, to bound memory; 0 runs all at once (default)")
    compare.add_argument("--force", action="store_true", help="use a workdir whose config.json differs from this config")
    compare.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    overrides = [a for a in argv if a.startswith("--config.")]
    args = parser.parse_args([a for a in argv if not a.startswith("--config.")])
    if overrides and args.command not in ("run", "compare"):
        parser.error(f"--config.FIELD=VALUE overrides apply to `sosjax run` and `sosjax compare` only, got {overrides[0]!r}.")

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("sosjax").setLevel(logging.INFO)
    # Orbax reports every checkpoint step through absl at INFO level.
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        return _dispatch(args, overrides)
    except KeyboardInterrupt:
        print("Interrupted. Finished stages and checkpoints are kept; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError) as error:
        return _report_error(args, str(error))
    except OSError as error:
        target = f" {error.filename}" if error.filename else ""
        return _report_error(
            args,
            f"could not read or write{target}: {error.strerror or error}. Finished stages and checkpoints are kept; "
            "fix the cause (free disk space, permissions) and run the same command again to resume.",
        )
    except Exception as error:  # Anything else is a bug: report it in one line unless --debug.
        return _report_error(args, f"unexpected {type(error).__name__}: {error}. Rerun with --debug for the traceback.")


def _report_error(args, message: str) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"sosjax: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _dispatch(args, overrides) -> int:
    if args.command == "run":
        from sosjax.config import load_config
        from sosjax.pipeline import run
        from sosjax.report import summary_lines
        from sosjax.io import read_json

        from sosjax.sharding import initialize_distributed

        # Starts the multi-host runtime when the environment describes one; it
        # must run before any JAX computation.
        initialize_distributed()
        if args.devices is not None:
            overrides = overrides + [f"--config.devices={args.devices}"]
        config = load_config(args.config, overrides)
        path = run(config, args.workdir, force=args.force, progress=not args.no_progress)
        for line in summary_lines(read_json(path)):
            print(line)
        print(f"Set of Sets written to {path}")
        print(f"Tables: {os.path.join(args.workdir, 'report.md')}; plots: {os.path.join(args.workdir, 'plots')}")
        return 0

    if args.command == "select":
        from sosjax.export import select

        member = select(args.workdir, args.task, max_params=args.max_params, max_bytes=args.max_bytes, dtype=args.dtype)
        member = dict(member, folder=os.path.join(args.workdir, member["path"]))
        print(json.dumps(member, indent=2))
        return 0

    if args.command == "report":
        from sosjax.report import write_report

        for path in write_report(args.workdir):
            print(path)
        return 0
    if args.command == "compare":
        from sosjax.compare import compare
        from sosjax.compare_report import FILES, markdown_table
        from sosjax.config import load_config

        config = load_config(args.config, overrides)
        algorithms = [name.strip() for name in args.algorithms.split(",") if name.strip()]
        summary = compare(config, args.workdir, seeds=args.seeds, algorithms=algorithms, sweep=args.sweep,
                          seed_chunk=args.seed_chunk, force=args.force, progress=not args.no_progress)
        print(markdown_table(summary), end="")
        print("Comparison written to " + ", ".join(os.path.join(args.workdir, name) for name in FILES.values()))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
