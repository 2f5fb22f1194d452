"""One module per headless subcommand, each with run(args): what the command does once its arguments are parsed
(engine.cli.parsers.<name> declares them). These modules import the engine, torch included, at their top;
engine.cli.main imports the one it runs, after parsing (engine.cli.command_module); no parser imports them."""
