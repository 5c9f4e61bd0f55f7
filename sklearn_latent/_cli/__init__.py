"""Subcommands of the ``sklearn-latent`` command line, one module each."""
