"""``python cli.py VERB TASK`` from a checkout: the same command line as the installed
``lstmkit`` console script, which lives in ``lstmkit.cli``."""

from lstmkit.cli import main

if __name__ == "__main__":
    main()
