"""``python -m bentolite.clipper``: see :mod:`bentolite.clipper.container`."""

from bentolite.clipper.container import main

if __name__ == "__main__":
    raise SystemExit(main())
