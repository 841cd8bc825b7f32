"""Allow `python -m immichcheck`."""

from immichcheck.cli.main import main

if __name__ == "__main__":
    main()
