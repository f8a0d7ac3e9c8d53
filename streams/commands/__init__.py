"""CLI subcommands: argument parsing and printing, delegating to the library modules."""
