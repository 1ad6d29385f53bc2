"""Pack a config into TextLength and save a bundle to the store."""

import json
from pathlib import Path

from text_length import TextLength


def main() -> str:
    config = json.loads((Path(__file__).parent / "config.json").read_text())
    svc = TextLength().pack("config", config)
    print(svc.length(["hello clipper world", "one"]))
    path = svc.save()
    print(f"Saved {svc.name}:{svc.version} at {path}")
    return path


if __name__ == "__main__":
    main()
