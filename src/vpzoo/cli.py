"""The ``vpzoo`` command line.

- ``vpzoo fit|validate|test|predict --config CONFIG [--section.key value ...]``: Lightning's own CLI
  (:class:`lightning.pytorch.cli.LightningCLI`), so every option of the model, the data module and the trainer
  can be set in the YAML config or overridden on the command line (e.g. ``--trainer.max_steps 200``).
- ``vpzoo list [PATTERN]``: the registered models.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _lightning_cli(args: list[str]) -> None:
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from vpzoo.models import VideoPredictionModel

    LightningCLI(
        VideoPredictionModel,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
    )


def _list(args: list[str]) -> int:
    from vpzoo.registry import list_models

    pattern = args[0] if args else "*"
    names = list_models(pattern)
    if not names:
        print(f"no model matches {pattern!r}", file=sys.stderr)
        return 1
    print("\n".join(names))
    return 0


USAGE = """usage: vpzoo COMMAND ...

commands:
  fit|validate|test|predict --config CONFIG [--key value ...]   train or evaluate (LightningCLI)
  list [PATTERN]                                               registered models (fnmatch pattern)

Run `vpzoo fit --help` for every option of a Lightning command."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vpzoo`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command in _LIGHTNING_COMMANDS:
        _lightning_cli([command, *rest])
        return 0
    if command == "list":
        return _list(rest)
    print(f"vpzoo: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2



if __name__ == "__main__":
    sys.exit(main())
