"""Diarization on synthetic voices: how many speakers, who speaks when, known voices, bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from diarize_voices import Voices

from malsori.diarize import (
    Diarization,
    DiarizeOptions,
    SpeakerReferenceError,
    diarize_audio,
    diarize_or_keep,
    load_samples,
    reference_speaker,
)
from malsori.errors import InvalidOptionError


def _label_of_spans(d: Diarization, spans: tuple[tuple[float, float, str], ...]) -> list[str]:
    """The label covering most of each reference turn."""
    labels = []
    for start, end, _ in spans:
        cover: Counter[str] = Counter()
        for t in d.turns:
            cover[t.speaker] += max(0.0, min(end, t.end) - max(start, t.start))
        labels.append(cover.most_common(1)[0][0])
    return labels


def _covered(d: Diarization, start: float, end: float) -> float:
    return sum(max(0.0, min(end, t.end) - max(start, t.start)) for t in d.turns)


def test_two_voices_are_two_speakers_in_turn(voices: Voices) -> None:
    d = diarize_audio(load_samples(voices.conversation), DiarizeOptions())
    assert d.speakers == ("SPEAKER_1", "SPEAKER_2")
    assert _label_of_spans(d, voices.spans) == ["SPEAKER_1", "SPEAKER_2"] * 2
    for start, end, _ in voices.spans:  # the speech is covered, the pauses are not
        assert _covered(d, start, end) > 0.8 * (end - start)
    for (_, end, _), (start, _, _) in zip(voices.spans, voices.spans[1:], strict=False):
        assert _covered(d, end + 0.1, start - 0.1) == 0.0
    starts = [t.start for t in d.turns]
    assert starts == sorted(starts)
    assert all(t.end > t.start for t in d.turns)


def test_one_voice_is_one_speaker(voices: Voices) -> None:
    d = diarize_audio(load_samples(voices.adam_alone), DiarizeOptions())
    assert d.speakers == ("SPEAKER_1",)


def test_exact_count_and_a_ceiling(voices: Voices) -> None:
    audio = load_samples(voices.conversation)
    exact = diarize_audio(audio, DiarizeOptions(num_speakers=2))
    assert _label_of_spans(exact, voices.spans) == ["SPEAKER_1", "SPEAKER_2"] * 2
    # More speakers than --max-speakers: the closest voices are merged (documented result).
    capped = diarize_audio(audio, DiarizeOptions(max_speakers=1))
    assert capped.speakers == ("SPEAKER_1",)
    # Fewer speakers than asked: the count is honoured by splitting a voice.
    three = diarize_audio(audio, DiarizeOptions(num_speakers=3))
    assert len(three.speakers) == 3


def test_no_speech_gives_no_turns(voices: Voices) -> None:
    d = diarize_audio(load_samples(voices.silence), DiarizeOptions())
    assert d.turns == () and d.speakers == ()
    empty = diarize_audio(np.zeros(0, np.float32), DiarizeOptions())
    assert empty.turns == ()


def test_known_voices_are_named_and_others_numbered(voices: Voices) -> None:
    adam = reference_speaker("Adam", voices.adam_reference)
    beth = reference_speaker("Beth", voices.beth_reference)
    assert float(adam.embedding @ adam.embedding) == pytest.approx(1.0, abs=1e-4)
    audio = load_samples(voices.conversation)
    both = diarize_audio(audio, DiarizeOptions(known=(beth, adam)))
    assert _label_of_spans(both, voices.spans) == ["Adam", "Beth"] * 2
    only_adam = diarize_audio(audio, DiarizeOptions(known=(adam,)))
    assert _label_of_spans(only_adam, voices.spans) == ["Adam", "SPEAKER_1"] * 2


def test_a_known_voice_that_is_absent_names_nobody(voices: Voices) -> None:
    beth = reference_speaker("Beth", voices.beth_reference)
    d = diarize_audio(load_samples(voices.adam_alone), DiarizeOptions(known=(beth,)))
    assert d.speakers == ("SPEAKER_1",)


def test_bad_references_are_clear_errors(voices: Voices) -> None:
    with pytest.raises(SpeakerReferenceError, match=r"'Ann'.*not usable audio"):
        reference_speaker("Ann", voices.not_audio)
    with pytest.raises(SpeakerReferenceError, match=r"'Ann'.*no speech"):
        reference_speaker("Ann", voices.silence)
    with pytest.raises(SpeakerReferenceError, match="not usable audio"):
        reference_speaker("Ann", voices.adam_reference.parent / "missing.wav")


def test_options_are_checked_once() -> None:
    with pytest.raises(InvalidOptionError):
        DiarizeOptions(num_speakers=0)
    with pytest.raises(InvalidOptionError):
        DiarizeOptions(min_speakers=3, max_speakers=2)
    with pytest.raises(InvalidOptionError):
        DiarizeOptions(num_speakers=5, max_speakers=2)
    ann = np.ones(256, np.float32) / 16
    from malsori.diarize import KnownSpeaker

    with pytest.raises(InvalidOptionError, match="twice"):
        DiarizeOptions(known=(KnownSpeaker("Ann", ann), KnownSpeaker("Ann", ann)))
    with pytest.raises(InvalidOptionError, match="speaker name"):
        DiarizeOptions(known=(KnownSpeaker("<Ann>", ann),))
    assert DiarizeOptions(max_speakers=3).speaker_range == (1, 3)
    round_trip = DiarizeOptions.from_dict(
        DiarizeOptions(2, known=(KnownSpeaker("Ann", ann),)).to_dict()
    )
    assert round_trip.num_speakers == 2 and round_trip.known[0].name == "Ann"
    assert np.allclose(round_trip.known[0].embedding, ann, atol=1e-6)


def test_a_failure_keeps_the_transcript(voices: Voices) -> None:
    from malsori.options import TranscribeOptions
    from malsori.results import LanguageInfo, Segment, Transcript

    transcript = Transcript(
        (Segment(0, 0.0, 1.0, " Hello."),), LanguageInfo.given("en"), 1.0, 0.1,
        TranscribeOptions(), "base",
    )  # fmt: skip
    kept, error = diarize_or_keep(transcript, voices.not_audio, DiarizeOptions())
    assert error is not None and "not" in error.lower()
    assert kept.segments == transcript.segments
    assert kept.segments[0].speaker is None
    assert kept.meta["diarization"] == {"error": error}
