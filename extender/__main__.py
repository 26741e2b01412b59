"""``python -m extender`` is the ``muster`` command."""

from extender.cli import main

if __name__ == "__main__":
    main()
