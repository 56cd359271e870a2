"""Entry point for `python -m nlpcli` (and so `torchrun -m nlpcli ...`)."""

from nlpcli.cli import main

if __name__ == "__main__":
    main()
