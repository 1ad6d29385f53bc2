"""Counts characters or words in text: a Clipper `strings` service with no heavy dependencies."""

from bentolite import Service, api, artifacts
from bentolite.adapters import ClipperStringsInput, StringInput
from bentolite.artifacts import JSONArtifact


@artifacts([JSONArtifact("config")])
class TextLength(Service):
    """Length of each text, in the unit the packed config names ("chars" or "words")."""

    def _length(self, text: str) -> int:
        if self.artifacts.config.get("unit") == "words":
            return len(text.split())
        return len(text)

    @api(input=ClipperStringsInput())
    def length(self, texts):
        """One length per input string (for a Clipper application of input type strings)."""
        return [self._length(t) for t in texts]

    @api(input=StringInput())
    def length_of_text(self, text):
        """The length of a plain-text body."""
        return {"unit": self.artifacts.config.get("unit", "chars"), "length": self._length(text)}
