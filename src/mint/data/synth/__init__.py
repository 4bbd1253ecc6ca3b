"""A procedural, licence-free sound-scene corpus: audio, captions, labels and QA generated from a seed."""

from mint.data.synth.corpus import (
    SynthExample,
    SynthSpec,
    clip_id,
    generate_corpus,
    single_event_spec,
    split_ranges,
    synth_example,
)
from mint.data.synth.events import EVENT_KINDS, Event, render_event, sample_event
from mint.data.synth.scenes import BACKGROUNDS, PlacedEvent, Scene, render_scene, sample_scene
from mint.data.synth.text import captions, event_description, labels, question_answers

__all__ = [
    "BACKGROUNDS",
    "EVENT_KINDS",
    "Event",
    "PlacedEvent",
    "Scene",
    "SynthExample",
    "SynthSpec",
    "captions",
    "clip_id",
    "event_description",
    "generate_corpus",
    "labels",
    "question_answers",
    "render_event",
    "render_scene",
    "sample_event",
    "sample_scene",
    "single_event_spec",
    "split_ranges",
    "synth_example",
]
