"""The command line: parse, call the library, print. No rule lives here."""

import typer.core

# Help and usage errors in click's plain layout: typer's rich layout costs about 0.1 s of CPU at every `--help`
# (rich's markdown, pretty and traceback modules), more than the whole start of a command. typer reads this flag
# when it formats (typer is pinned below 0.21 in pyproject.toml); turning it off also keeps typer from escaping
# "[default: …]" for rich, which `rich_markup_mode=None` alone does not. Set here, before any command is defined.
typer.core.HAS_RICH = False
