"""One module per headless subcommand, each with register(subparsers) setting `func`."""
