"""`python -m nowcast` (and `torchrun -m nowcast`) enter the same CLI as the `nowcast` script."""

from nowcast.cli import main

if __name__ == "__main__":
    main()
