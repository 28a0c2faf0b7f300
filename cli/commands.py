"""The subcommands. Each parses options, calls one library function, prints a summary."""

from __future__ import annotations

import json

import click

from cli.main import handle_errors
from kerasnotes.data import HELD_OUT_SPLITS  # Names only: no TensorFlow.


def _debug(ctx) -> bool:
    return bool((ctx.find_root().obj or {}).get("debug"))


def _print_metrics(metrics: dict) -> None:
    for key, value in metrics.items():
        if isinstance(value, float):
            click.echo(f"  {key}: {value:.4f}")
        elif key == "comparison":
            click.echo("  held-out bits per character:")
            width = max(len(name) for name in value)
            for name, bits in value.items():
                click.echo(f"    {name:<{width}}  {bits:.4f}")
        elif key == "samples" and value and "prompt" in value[0]:
            for sample in value:
                click.echo(f"  sample: {sample['prompt']!r} -> {sample['text']!r}")
        elif key == "samples":
            for sample in value:
                if "caption" in sample:
                    said = repr(sample["caption"])
                elif "question" in sample:
                    said = f"{sample['question']!r} -> {sample['answer']!r}"
                else:
                    said = f"{sample['text']!r} -> {sample['predicted']!r}"
                reference = sample.get("reference") or sample["references"][0]
                click.echo(f"  sample: {said}  (reference: {reference!r})")
        elif isinstance(value, dict):
            inner = ", ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
            )
            click.echo(f"  {key}: {inner}")
        else:
            click.echo(f"  {key}: {value}")


@click.command()
@click.argument("pattern", default="*")
@click.pass_context
def models(ctx, pattern):
    """List the registered models (built-in, entry points and --plugin modules).

    \b
    Examples:
      kerasnotes models
      kerasnotes models 'c*'
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.registry import get_spec, list_models

        names = list_models(pattern)
        specs = [get_spec(name) for name in names]
        width = max((len(n) for n in names), default=0)
        task_width = max((len(spec.task) for spec in specs), default=0)
        for name, spec in zip(names, specs, strict=True):
            click.echo(f"{name:<{width}}  {spec.task:<{task_width}}  {spec.description}")


@click.command()
@click.pass_context
def datasets(ctx):
    """List the datasets each kind of model can train on.

    \b
    Example:
      kerasnotes datasets
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.registry import get_spec, list_models
        from kerasnotes.tasks import get_task, task_names

        by_task: dict[str, list[str]] = {}
        for name in list_models():  # Imports the plugins, which may register tasks.
            by_task.setdefault(get_spec(name).task, []).append(name)
        for task_name in sorted({*task_names(), *by_task}):
            model_names = ", ".join(by_task.get(task_name, [])) or "none registered"
            click.echo(f"{task_name} (models: {model_names}):")
            for line in get_task(task_name).datasets_help():
                click.echo(f"  {line}")


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.option(
    "--dataset", help="Embedded name, tfds name or local path (see `kerasnotes datasets`)."
)
@click.option("--epochs", type=int, help="Epochs to train.  [default: the model's]")
@click.option("--batch-size", type=int, help="Global batch size.  [default: the model's]")
@click.option("--learning-rate", type=float, help="Peak learning rate (of the lr_schedule key).")
@click.option("--optimizer", help="A Keras optimizer name: adam, adamw, sgd, rmsprop, ...")
@click.option(
    "-s",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a configuration key (value parsed as YAML). Repeatable.",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML or JSON file of configuration keys (a run's config.json works).",
)
@click.option(
    "--data-format",
    type=click.Choice(["channels_last", "channels_first"]),
    help="Channel ordering of the model's inputs and tensor signature.",
)
@click.option(
    "--strategy", type=click.Choice(["default", "mirrored"]), help="tf.distribute strategy."
)
@click.option("--seed", type=int, help="Random seed; the same seed repeats a run.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    help="Run directory.  [default: runs/MODEL-TIME]",
)
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --run-dir.")
@click.option(
    "--export-dir", default="saved_models", type=click.Path(file_okay=False), help="Export root."
)
@click.option("--no-export", is_flag=True, help="Do not export at the end.")
@click.pass_context
def train(
    ctx,
    model,
    dataset,
    epochs,
    batch_size,
    learning_rate,
    optimizer,
    overrides,
    config_file,
    data_format,
    strategy,
    seed,
    run_dir,
    resume,
    export_dir,
    no_export,
):
    """Train MODEL, evaluate it on the held-out split and export it.

    Configuration layers, each overriding the one before: the model's defaults,
    --config FILE, --set KEY=VALUE, then the flags below. Every key is checked.

    \b
    Examples:
      kerasnotes train captioner
      kerasnotes train captioner --set rnn=lstm --set num_layers=2 --set beam_width=5
      kerasnotes train captioner --dataset annotations/captions_train2017.json
      kerasnotes train vqa --set fusion=concat
      kerasnotes train cnn
      kerasnotes train cnn --data-format channels_first --epochs 5
      kerasnotes train cnn --dataset mnist --set filters=[16,32] --set augmentations=[translate]
      kerasnotes train cnn --dataset ./photos --set image_size=96
      kerasnotes train cnn --run-dir runs/a --resume
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.training import train as run_training

        flags = {
            "dataset": dataset,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "optimizer": optimizer,
            "data_format": data_format,
            "strategy": strategy,
            "seed": seed,
        }
        result = run_training(
            model,
            config_file=config_file,
            overrides=overrides,
            flags=flags,
            run_dir=run_dir,
            resume=resume,
            export_dir=None if no_export else export_dir,
            echo=click.echo,
        )
        click.echo(f"Trained {result.epochs_trained} epoch(s) in {result.train_seconds:.1f} s.")
        click.echo("Held-out metrics:")
        _print_metrics(result.metrics)
        click.echo(f"Run: {result.run_dir}")
        if result.export_dir:
            click.echo(f"Export: {result.export_dir}")


@click.command()
@click.argument("path", type=click.Path())
@click.option("--dataset", help="Evaluate on this dataset instead of the trained one.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Evaluation batch size.")
@click.option(
    "--split",
    type=click.Choice(HELD_OUT_SPLITS),
    default="test",
    show_default=True,
    help="The held-out split: test (what runs report), validation (to choose settings "
    "on) or shifted (the embedded datasets' split outside their training ranges).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.pass_context
def evaluate(ctx, path, dataset, batch_size, split, as_json):
    """Held-out metrics of PATH: a run directory or an export version.

    \b
    Examples:
      kerasnotes evaluate runs/cnn-20261122-101500
      kerasnotes evaluate saved_models/cnn/1 --json
      kerasnotes evaluate runs/captioner-20261122-101500 --split validation
      kerasnotes evaluate runs/captioner-20261122-101500 --split shifted
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.runs import evaluate as run_evaluate

        metrics = run_evaluate(path, dataset=dataset, batch_size=batch_size, split=split)
        if as_json:
            click.echo(json.dumps(metrics, indent=2))
        else:
            click.echo(f"Held-out metrics of {path} ({split} split):")
            _print_metrics(metrics)


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option(
    "--export-dir",
    default="saved_models",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Export root.",
)
@click.pass_context
def export(ctx, run_dir, export_dir):
    """Export the finished run RUN_DIR as the next version under EXPORT_DIR/MODEL/.

    \b
    Example:
      kerasnotes export runs/cnn-20261122-101500 --export-dir /srv/models
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.runs import export_run

        click.echo(f"Exported: {export_run(run_dir, export_root=export_dir, echo=click.echo)}")


@click.command()
@click.argument("export_dir", metavar="EXPORT", type=click.Path())
@click.argument("inputs", metavar="INPUT...", nargs=-1)
@click.option(
    "-f", "--file", "input_file", metavar="FILE", help="Read more inputs from FILE, one per line."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per input.")
@click.option("--greedy", is_flag=True, help="Captioners: greedy decoding instead of beam search.")
@click.option("-q", "--question", help="VQA models: the question to ask about every image.")
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    help="Language models: tokens to generate (default: the run's max_length).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0),
    help="Language models: sampling temperature; 0 is greedy (default: the run's).",
)
@click.option(
    "--top-k", type=click.IntRange(min=0), help="Language models: sample from the k likeliest."
)
@click.option(
    "--top-p",
    type=click.FloatRange(0, 1, min_open=True),
    help="Language models: sample from the likeliest tokens holding this probability.",
)
@click.option("--seed", type=int, help="Language models: the sampling seed (default: the run's).")
@click.option("--stream", is_flag=True, help="Language models: print the text as it is generated.")
@click.pass_context
def predict(ctx, export_dir, inputs, input_file, as_json, greedy, question, **sampling):
    """Run the export EXPORT on INPUT files or strings and print one result per input.

    \b
    Examples:
      kerasnotes predict saved_models/cnn/1 circle.png square.jpg
      kerasnotes predict saved_models/captioner/1 scene.png --greedy
      kerasnotes predict saved_models/vqa/1 scene.png --question "what colour is the ring?"
      kerasnotes predict saved_models/rnn/1 "the plot was not bad" "never once funny"
      kerasnotes predict saved_models/rnn-tagger/1 --file sentences.txt
      kerasnotes predict saved_models/char-rnn/1 "The " --temperature 0.8 --max-length 300
      kerasnotes predict saved_models/transformer-lm/1 "def " --top-p 0.9 --stream
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.runs import predict as run_predict

        options = {"greedy": True} if greedy else {}
        if question is not None:
            options["question"] = question
        # `is`, not `in (None, False)`: 0 == False, and --seed 0 or --top-k 0 is a value.
        options.update({k: v for k, v in sampling.items() if v is not None and v is not False})
        results = run_predict(export_dir, list(inputs), input_file=input_file, **options)
        for result in results:
            if "stream" in result:
                click.echo(result["input"], nl=False)
                for piece in result["stream"]:
                    click.echo(piece, nl=False)
                click.echo()
            elif isinstance(result.get("continuation"), list) and not as_json:
                values = " ".join(f"{v:.6g}" for v in result["continuation"])
                click.echo(f"{result['input']}\t{values}")
            elif "continuation" in result and not as_json:
                click.echo(result["input"] + result["continuation"])
            elif as_json:
                click.echo(json.dumps(result))
            else:
                values = [v for k, v in result.items() if k != "input"]
                shown = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in values]
                click.echo("\t".join([result["input"], *shown]))


@click.command()
@click.argument("path", type=click.Path())
@click.argument("words", metavar="WORD...", nargs=-1, required=True)
@click.option("-n", "--count", type=click.IntRange(1, 10), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per word.")
@click.pass_context
def neighbours(ctx, path, words, count, as_json):
    """Print the words nearest to each WORD by cosine similarity in the embedding of
    PATH: a run directory or an export of a text model. A character-level language
    model embeds characters: give it single characters.

    \b
    Examples:
      kerasnotes neighbours saved_models/rnn/1 good dull
      kerasnotes neighbours runs/rnn-20261129-101500 good -n 5
    """
    with handle_errors(_debug(ctx)):
        from kerasnotes.runs import neighbours as run_neighbours

        for result in run_neighbours(path, list(words), count):
            if as_json:
                click.echo(json.dumps(result))
            elif result.get("unknown"):
                click.echo(f"{result['word']}: not in the vocabulary")
            else:
                shown = ", ".join(
                    f"{word} {similarity:.3f}" for word, similarity in result["neighbours"]
                )
                click.echo(f"{result['word']}: {shown}")
