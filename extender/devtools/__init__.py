"""Developer tooling shipped with muster, not part of the extender itself.

It drives a running extender from the outside, as kube-scheduler would, for ``muster demo`` and
the load test (``loadtest/``).  Nothing on the serving path imports it: the import-linter
contracts in pyproject.toml let only ``extender.demo`` (and so the CLI) use it.
"""
