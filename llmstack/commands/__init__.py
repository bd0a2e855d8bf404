"""One module per `llmstack` subcommand (see llmstack/cli.py for the protocol)."""
