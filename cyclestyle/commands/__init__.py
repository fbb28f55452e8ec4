"""The `cyclestyle` subcommands other than `train` (which is Hydra's): one module each, with
`build_parser()` and `main(argv) -> exit status`."""
