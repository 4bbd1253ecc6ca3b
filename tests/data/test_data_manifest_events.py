"""The manifest's `events` field: timed events written and read back, and every malformed event named
by file, line and field."""

from __future__ import annotations

import json

import pytest

from mint.data.manifest import ManifestRecord, TimedEvent, read_manifest, write_manifest
from mint.errors import DataError


def test_events_round_trip_and_an_absent_caption_is_left_out(tmp_path):
    events = [
        TimedEvent("siren", 0.4, 1.6, "a loud long high-pitched siren"),
        TimedEvent("knock", 2.0, 2.25),
    ]
    records = [
        ManifestRecord(id="a", audio=str(tmp_path / "a.wav"), events=events),
        ManifestRecord(id="b", audio=str(tmp_path / "b.wav")),
    ]
    path = tmp_path / "m.jsonl"
    write_manifest(records, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["events"] == [
        {"label": "siren", "onset": 0.4, "offset": 1.6, "caption": "a loud long high-pitched siren"},
        {"label": "knock", "onset": 2.0, "offset": 2.25},
    ]
    assert "events" not in lines[1]
    back = read_manifest(path)
    assert back[0].events == events
    assert back[1].events == []


def test_integer_times_and_a_zero_length_event_are_accepted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"id": "a", "audio": "a.wav", "events": [{"label": "beep", "onset": 0, "offset": 0}, '
        '{"label": "bell", "onset": 3, "offset": 4.5, "caption": null}]}\n'
    )
    (record,) = read_manifest(path)
    assert record.events == [TimedEvent("beep", 0.0, 0.0), TimedEvent("bell", 3.0, 4.5)]
    assert all(isinstance(event.onset, float) for event in record.events)


_GOOD = '{"label": "siren", "onset": 0.5, "offset": 1.0}'


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ('{"label": "siren"}', "field 'events' must be a list"),
        ('["siren"]', "events[0] must be a {label, onset, offset[, caption]} object"),
        (f'[{_GOOD}, {{"label": "x", "onset": 1}}]', "events[1] is missing required field(s) ['offset']"),
        (
            f'[{_GOOD}, {{"label": "", "onset": 1, "offset": 2}}]',
            "events[1].label must be a non-empty string",
        ),
        ('[{"label": 7, "onset": 1, "offset": 2}]', "events[0].label must be a non-empty string"),
        (
            f'[{_GOOD}, {_GOOD}, {_GOOD}, {{"label": "x", "onset": -0.1, "offset": 2}}]',
            "events[3].onset must be a number >= 0",
        ),
        ('[{"label": "x", "onset": "0.5", "offset": 2}]', "events[0].onset must be a number >= 0"),
        ('[{"label": "x", "onset": true, "offset": 2}]', "events[0].onset must be a number >= 0"),
        ('[{"label": "x", "onset": NaN, "offset": 2}]', "events[0].onset must be a number >= 0"),
        ('[{"label": "x", "onset": 2.0, "offset": 1.5}]', "events[0].offset must be a number >= onset"),
        ('[{"label": "x", "onset": 2.0, "offset": Infinity}]', "events[0].offset must be a number >= onset"),
        ('[{"label": "x", "onset": 0, "offset": 1, "caption": 3}]', "events[0].caption must be a string"),
        ('[{"label": "x", "onset": 0, "offset": 1, "start": 0}]', "events[0] has unknown field(s) ['start']"),
    ],
)
def test_malformed_events_are_reported_with_file_line_and_field(tmp_path, events, message):
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"id": "ok", "audio": "ok.wav"}\n' + f'{{"id": "x", "audio": "x.wav", "events": {events}}}\n'
    )
    with pytest.raises(DataError) as info:
        read_manifest(path)
    assert f"{path}:2: " in str(info.value)
    assert message in str(info.value)
