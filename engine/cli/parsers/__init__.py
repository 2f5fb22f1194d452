"""One module per headless subcommand, each with register(subparsers): the subcommand's flags, from the spec
layer alone (no torch: an import-linter contract). engine.cli.commands.<name> runs it."""
