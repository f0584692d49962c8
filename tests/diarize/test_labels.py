"""Speakers onto transcripts: words by their times, segments split where the speaker changes, and
the labels in every writer."""

from __future__ import annotations

import json

from malsori.diarize import Diarization, label_transcript
from malsori.diarize.assign import LabelledTurn, SpeakerTimeline, label_segments
from malsori.options import TranscribeOptions
from malsori.results import LanguageInfo, Segment, Transcript, Word
from malsori.subtitles.profiles import SubtitleSpec
from malsori.writers import get_writer

TURNS = (LabelledTurn(0.0, 2.1, "Adam"), LabelledTurn(2.4, 5.0, "SPEAKER_1"))


def _words(*timed: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(s, e, w, 0.9) for s, e, w in timed)


def _transcript(options: TranscribeOptions | None = None) -> Transcript:
    first = _words((0.0, 0.4, " Shall"), (0.4, 0.7, " we"), (0.7, 1.5, " start?"),
                   (2.5, 2.9, " Yes,"), (2.9, 3.6, " please."))  # fmt: skip
    second = _words((3.8, 4.3, " Thank"), (4.3, 4.9, " you."))
    segments = (
        Segment(0, 0.0, 3.6, "".join(w.word for w in first), first, tokens=(1, 2, 3)),
        Segment(1, 3.8, 4.9, "".join(w.word for w in second), second),
    )
    opts = options or TranscribeOptions(word_timestamps=True)
    return Transcript(segments, LanguageInfo.given("en"), 5.0, 1.0, opts, "base", "talk.wav")


def test_words_go_to_the_turn_they_overlap_most() -> None:
    timeline = SpeakerTimeline(TURNS)
    assert timeline.speaker_at(0.5, 0.9) == "Adam"
    assert timeline.speaker_at(1.9, 2.8) == "SPEAKER_1"  # 0.2 s in Adam's turn, 0.4 s in the next
    assert timeline.speaker_at(2.0, 2.5) == "Adam"  # 0.1 s against 0.1 s: the first kept
    assert timeline.speaker_at(2.15, 2.25) == "Adam"  # in the pause: the nearest turn
    assert timeline.speaker_at(6.0, 6.5) == "SPEAKER_1"  # after the last turn
    assert SpeakerTimeline(()).speaker_at(0.0, 1.0) is None


def test_a_segment_is_split_at_the_word_where_the_speaker_changes() -> None:
    labelled = label_segments(_transcript().segments, SpeakerTimeline(TURNS))
    assert [(s.id, s.speaker, s.text) for s in labelled] == [
        (0, "Adam", " Shall we start?"),
        (1, "SPEAKER_1", " Yes, please."),
        (2, "SPEAKER_1", " Thank you."),
    ]
    first, second = labelled[0], labelled[1]
    assert (first.start, first.end) == (0.0, 1.5)
    assert (second.start, second.end) == (2.5, 3.6)
    assert first.tokens == () and second.tokens == ()  # the decoder's tokens were for both
    for seg in labelled:
        assert seg.text == "".join(w.word for w in seg.words)
        assert {w.speaker for w in seg.words} == {seg.speaker}
        assert all(seg.start <= w.start and w.end <= seg.end for w in seg.words)


def test_segments_without_words_take_the_speaker_of_their_span() -> None:
    plain = (Segment(0, 0.0, 2.0, " Shall we start?"), Segment(1, 2.5, 4.9, " Yes."))
    labelled = label_segments(plain, SpeakerTimeline(TURNS))
    assert [s.speaker for s in labelled] == ["Adam", "SPEAKER_1"]


def _diarized(options: TranscribeOptions | None = None) -> Transcript:
    return label_transcript(_transcript(options), Diarization(TURNS, ("Adam", "SPEAKER_1"), 0.1))


def test_json_has_a_speaker_on_every_segment_and_word_and_reads_back() -> None:
    t = _diarized()
    data = json.loads(get_writer("json").render(t))
    assert [s["speaker"] for s in data["segments"]] == ["Adam", "SPEAKER_1", "SPEAKER_1"]
    assert all(w["speaker"] == s["speaker"] for s in data["segments"] for w in s["words"])
    assert data["meta"]["diarization"]["speakers"] == ["Adam", "SPEAKER_1"]
    assert Transcript.from_dict(data).segments == t.segments
    undiarized = json.loads(get_writer("json").render(_transcript()))
    assert "speaker" not in undiarized["segments"][0]


def test_text_formats_carry_the_label() -> None:
    t = _diarized(TranscribeOptions(word_timestamps=True, subtitles=SubtitleSpec("none")))
    assert get_writer("txt").render(t) == (
        "[Adam] Shall we start?\n[SPEAKER_1] Yes, please.\n[SPEAKER_1] Thank you.\n"
    )
    tsv = get_writer("tsv").render(t).splitlines()
    assert tsv[1] == "0\t1500\t[Adam] Shall we start?"
    assert tsv[2] == "2500\t3600\t[SPEAKER_1] Yes, please."
    srt = get_writer("srt").render(t)
    assert "00:00:00,000 --> 00:00:01,500\n[Adam] Shall we start?\n" in srt
    vtt = get_writer("vtt").render(t)
    assert "00:00:02.500 --> 00:00:03.600\n<v SPEAKER_1>Yes, please.\n" in vtt


def test_subtitle_cues_never_hold_two_speakers() -> None:
    t = _diarized(TranscribeOptions(word_timestamps=True, subtitles=SubtitleSpec("netflix-en")))
    data = json.loads(get_writer("json").render(t))
    cues = data["subtitles"]["cues"]
    assert cues[0]["speaker"] == "Adam"
    assert {c["speaker"] for c in cues} == {"Adam", "SPEAKER_1"}
    for cue in cues:
        if cue["speaker"] == "Adam":
            assert cue["end"] <= 2.5  # Adam's cue ends before the other speaker starts
    starts = [c["start"] for c in cues]
    assert starts == sorted(starts)
    vtt = get_writer("vtt").render(t)
    assert "<v Adam>Shall we start?" in vtt
    assert "<v SPEAKER_1>" in vtt and "Shall we start? Yes" not in vtt


def test_no_speech_leaves_the_transcript_unlabelled() -> None:
    t = label_transcript(_transcript(), Diarization((), (), 0.0))
    assert t.segments == _transcript().segments
    assert t.meta["diarization"]["speakers"] == []
    assert get_writer("txt").render(t).startswith("Shall we start?")
