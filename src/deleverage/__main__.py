"""``python -m deleverage``: the command line."""

from deleverage.cli import main

if __name__ == "__main__":
    main()
