"""docs/events.md stays true: it shows every catalogue entry, and every example decodes."""
import json
import re
from pathlib import Path

from shared.events import CATALOGUE, decode

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_every_event_is_documented_with_an_example_that_validates():
    text = DOC.read_text()
    sections = re.findall(r"### `([a-z_.]+)` \(version (\d+)\).*?```json\n(.*?)\n```", text, re.S)
    documented = {(name, int(version)): json.loads(example) for name, version, example in sections}
    assert set(documented) == set(CATALOGUE)
    for (name, version), example in documented.items():
        event = decode(example)
        assert (event.event_type, event.event_version) == (name, version)
