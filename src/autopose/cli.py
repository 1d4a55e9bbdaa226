"""The ``autopose`` command line: search, train, test, infer, export, flops, data synth,
demo, and study (the paper's tables 4 and 5, a driver of the other commands).

Each subcommand parses its arguments here and calls one function of the package; bad input
anywhere surfaces as :class:`autopose.errors.UserError`, printed on one line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autopose.config import DEFAULT_CONFIG, load_config
from autopose.errors import UserError
from autopose.study.options import USAGE as STUDY_USAGE
from autopose.study.options import add_study_arguments

# Each command imports its own modules when it runs: `autopose study` starts every stage as
# a fresh process, and importing every command's modules (the search and its plots, the
# demo, ONNX export) cost each training and test process about 0.45 s of its start-up.


def _add_config_args(p: argparse.ArgumentParser, out_default: str | None = None) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help="YAML config (default: the built-in synthetic setting)")
    p.add_argument("--out", type=Path, default=out_default, help="run folder")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. data.val.det_file=null test.flip=false")


def _cmd_test(args: argparse.Namespace) -> int:
    from autopose.engine.checkpoint import checkpoint_config, read_checkpoint
    from autopose.engine.tester import run_test_command

    if args.checkpoint is None and not args.oracle:
        raise UserError("autopose test: give --checkpoint CKPT or --oracle")
    if args.checkpoint is not None and args.config is None:
        # Without --config a checkpoint is tested in the setting it was trained in.
        cfg = checkpoint_config(read_checkpoint(args.checkpoint), args.checkpoint,
                                args.overrides)
    else:
        cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
    run_test_command(cfg, out_dir=args.out, checkpoint=args.checkpoint, oracle=args.oracle)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from autopose.engine.trainer import run_train_command

    return run_train_command(args.config, args.overrides, args.genotype, args.model, args.out,
                             args.resume)


def _cmd_infer(args: argparse.Namespace) -> int:
    network = {"backend": args.backend, "threads": args.threads, "batch": args.batch}
    if args.video is not None:
        from autopose.engine.infer_video import run_video_command

        run_video_command(args.checkpoint, args.video, args.boxes, args.box, args.out,
                          min_score=args.min_score, kpt_thresh=args.kpt_thresh, **network)
        return 0
    from autopose.engine.infer import run_infer_command

    run_infer_command(args.checkpoint, args.image, args.boxes, args.box, args.out,
                      min_score=args.min_score, kpt_thresh=args.kpt_thresh, **network)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from autopose.engine.export import run_export_command

    run_export_command(args.checkpoint, args.format, args.out, args.input)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from autopose.search.run import run_search_command

    cfg = load_config(args.config or DEFAULT_CONFIG, args.overrides)
    run_search_command(cfg, args.out, args.strategy, args.resume, args.seed)
    return 0


def _cmd_flops(args: argparse.Namespace) -> int:
    from autopose.models.flops import run_flops_command

    return run_flops_command(args.model, args.input, as_json=args.json)


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from autopose.data.synthetic import run_synth_command

    return run_synth_command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from autopose.demo import run_demo

    return run_demo(out_dir=args.out)


def _cmd_study(args: argparse.Namespace) -> int:
    from autopose.study.run import run_study_command

    return run_study_command(args, args.argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopose",
        description="AutoPose: neural architecture search for 2D human pose estimation.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("test", help="test a checkpoint (or the ground-truth oracle) on the val split")
    _add_config_args(p)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="without --config, tested in the config stored in the checkpoint")
    p.add_argument("--oracle", action="store_true",
                   help="use ground-truth heatmaps in place of network output: the upper bound "
                        "of the heatmap codec and a check of every transform")
    p.set_defaults(func=_cmd_test)

    p = sub.add_parser("train", help="train a derived network (or a baseline) from scratch; "
                                     "under torchrun, one process per device")
    _add_config_args(p)
    arch = p.add_mutually_exclusive_group()
    arch.add_argument("--genotype", type=Path, default=None, help="genotype.json of the search")
    arch.add_argument("--model", default=None,
                      help="a baseline instead: hrnet_w32 | hrnet_w48 | simple_baseline_50")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("infer", help="poses on images or a video: drawn skeletons and "
                                     "COCO-format results (without boxes the whole image or "
                                     "frame is one person)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a .pt checkpoint, or a .onnx model from autopose export")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, default=None, help="an image file or a folder")
    source.add_argument("--video", type=Path, default=None,
                        help="a video file: writes the video annotated (NAME.mp4) and "
                             "results.json (image_id: the frame index, from 0)")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--boxes", type=Path, default=None,
                       help="person detections, COCO results format (image_id or file_name; "
                            "for a video, image_id is the frame index)")
    boxes.add_argument("--box", default=None, help="one box x,y,w,h for every image or frame")
    # Strings checked by the command (one line, exit 2), not by argparse (usage and error).
    p.add_argument("--backend", default=None,
                   help="torch | onnxruntime (default: onnxruntime for a .onnx, torch for a "
                        ".pt; onnxruntime runs a .pt exported in memory)")
    p.add_argument("--threads", default=None,
                   help="CPU threads of torch and ONNX Runtime (default: torch's, one per core)")
    p.add_argument("--batch", default=None,
                   help="person crops a network call (default: the model's test.batch_size)")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("--min-score", type=float, default=0.0,
                   help="skip detections scored below this (default 0)")
    p.add_argument("--kpt-thresh", type=float, default=0.2,
                   help="draw joints scored at least this (default 0.2)")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("export", help="export a checkpoint to ONNX, checked against PyTorch")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--format", default="onnx", help="onnx (the only one)")
    p.add_argument("--out", type=Path, default=None, help="default: the checkpoint's name, .onnx")
    p.add_argument("--input", default=None, help="HxW (default: the checkpoint's input size)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("search", help="search an architecture (cells by gradient, branches "
                                      "by the RL controller) and write genotype.json")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--strategy", choices=("autopose", "random"), default="autopose",
                   help="autopose (bi-level) or random search with the same budget")
    p.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("flops", help="parameters and GFLOPs (multiply-accumulates / 1e9)")
    p.add_argument("--model", required=True,
                   help="hrnet_w32 | hrnet_w48 | simple_baseline_50 | PATH/genotype.json")
    p.add_argument("--input", default="256x192", help="input size HxW (default 256x192)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_flops)

    p = sub.add_parser("data", help="datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synth", help="write the built-in synthetic pose set (COCO format)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--num-train", type=int, default=None)
    s.add_argument("--num-val", type=int, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--image-size", default=None, help="WxH, default 640x480")
    s.add_argument("--level", default=None, help="standard (default) or easy: see docs/synthetic.md")
    s.set_defaults(func=_cmd_data_synth)

    p = sub.add_parser("demo", help="the main job on the built-in data")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.set_defaults(func=_cmd_demo)

    # No usage block: a bad option is then one line (argparse prints the usage before its
    # error otherwise); the description starts with the usage instead.
    p = sub.add_parser("study", help="the paper's study (tables 4 and 5): search, train and "
                                     "test each row for several seeds (resumable)",
                       usage=argparse.SUPPRESS,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=f"usage: {STUDY_USAGE}\n\nThe paper's study: each row is "
                                   "searched (or not), trained from scratch and tested, for\n"
                                   "each seed, every stage a fresh process. Run the same "
                                   "command again to resume.")
    add_study_arguments(p)
    p.set_defaults(func=_cmd_study, parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # As parse_args would, but from a subcommand's own parser where it has one (the
        # study's: one line).
        (getattr(args, "parser", None) or parser).error(
            f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given, for the records
    try:
        code = int(args.func(args) or 0)
        # Flushed here, not at interpreter exit, so that a reader gone away is caught below.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader of stdout left early (`autopose ... | head`): stop quietly, as Unix
        # tools do. stdout goes to /dev/null first so that the interpreter's last flush
        # finds no broken pipe to complain about.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the signal
    except UserError as e:
        print(f"autopose: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autopose: interrupted", file=sys.stderr)
        return 130
