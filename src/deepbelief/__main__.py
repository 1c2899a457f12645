"""``python -m deepbelief`` (also ``torchrun -m deepbelief train ...``): the command line."""

from .cli import run

if __name__ == "__main__":
    run()
