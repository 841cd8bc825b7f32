"""Allow `python -m immichcheck`."""

from immichcheck.cli import main

if __name__ == "__main__":
    main()
