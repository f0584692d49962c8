"""Packing speech into shared windows and splitting decoded segments back (no model needed)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from malsori.audio import SAMPLE_RATE
from malsori.decoding import WINDOW_SAMPLES, compression_ratio, parse_tokens
from malsori.engine.decoder import (
    EARLY_END_S,
    MAX_SEGMENT_S,
    DecodedSegment,
    WindowResult,
    shares_compression_ratio,
    split_untimed,
)
from malsori.engine.distribute import _lost, _unfinished
from malsori.engine.lid import _context
from malsori.engine.packing import (
    GAP_SAMPLES,
    USABLE_SAMPLES,
    Packer,
    Piece,
    TimedText,
    Window,
    assign,
    iter_pieces_after,
    owner,
    split_region,
)

SR = SAMPLE_RATE


def piece(file: int, seconds: float, start_s: float = 0.0, value: float = 0.5) -> Piece:
    n = int(seconds * SR)
    return Piece(file, 0, int(start_s * SR), np.full(n, value, dtype=np.float32))


def test_short_pieces_share_a_window_with_silence_between() -> None:
    packer = Packer()
    for f in range(4):
        packer.add(piece(f, 5.0, value=f + 1), "ko")
    window = packer.take(8, flush=True)[0]
    assert [p.piece.file for p in window.placements] == [0, 1, 2, 3]
    offsets = [p.offset for p in window.placements]
    assert offsets == [i * (5 * SR + GAP_SAMPLES) for i in range(4)]
    audio = window.audio()
    assert audio.size == window.used == 4 * 5 * SR + 3 * GAP_SAMPLES <= WINDOW_SAMPLES
    assert audio[0] == 1 and audio[5 * SR + GAP_SAMPLES] == 2 and audio[-1] == 4
    assert np.all(audio[5 * SR : 5 * SR + GAP_SAMPLES] == 0)  # the gap is silence


def test_windows_never_overflow_and_keep_arrival_order() -> None:
    packer = Packer()
    lengths = [7.0, 12.0, 3.0, 20.0, 29.0, 1.0, 9.5, 9.5, 9.5]
    for f, s in enumerate(lengths):
        packer.add(piece(f, s), "en")
    windows = packer.take(100, flush=True)
    order = [p.piece.file for w in windows for p in w.placements]
    assert order == list(range(len(lengths)))
    for w in windows:
        assert w.used <= USABLE_SAMPLES
        ends = [p.offset + p.length for p in w.placements]
        assert all(
            b.offset >= a_end + GAP_SAMPLES
            for a_end, b in zip(ends, w.placements[1:], strict=False)
        )


def test_languages_are_never_mixed_in_a_window() -> None:
    packer = Packer()
    for f in range(6):
        packer.add(piece(f, 4.0), "ko" if f % 2 else "en")
    windows = packer.take(10, flush=True)
    assert sorted(w.language for w in windows) == ["en", "ko"]
    for w in windows:
        files = [p.piece.file for p in w.placements]
        assert all((f % 2 == 1) == (w.language == "ko") for f in files)


def test_take_waits_for_full_windows_unless_flushed_or_kept_waiting_too_long() -> None:
    packer = Packer(max_wait=3)
    packer.add(piece(0, 5.0), "en")  # a language with few files
    assert packer.ready == 0 and packer.pending == 1
    assert packer.take(4) == [] and packer.take(4) == []  # asking again changes nothing
    packer.add(piece(1, 28.5), "ko")  # full: closed at once
    packer.add(piece(2, 28.5), "ko")
    assert [w.language for w in packer.closed] == ["ko", "ko"]
    packer.add(piece(3, 28.5), "ko")  # the third closed window: English has waited long enough
    assert [w.language for w in packer.take(8)] == ["ko", "ko", "ko", "en"]
    packer.add(piece(4, 5.0), "ko")
    assert len(packer.take(4, flush=True)) == 1
    with pytest.raises(ValueError):
        packer.add(piece(5, 29.5), "ko")


def test_packing_depends_on_the_order_of_pieces_not_on_when_windows_are_taken() -> None:
    def pack(take_every: int) -> list[tuple[int, ...]]:
        packer = Packer(max_wait=4)
        windows = []
        for i in range(60):
            packer.add(piece(i, 2.0 + (i * 7) % 11), "ko" if i % 5 else "en")
            if take_every and i % take_every == 0:
                windows += packer.take(2)
        windows += packer.take(100, flush=True)
        return sorted(tuple(p.piece.file for p in w.placements) for w in windows)

    assert pack(0) == pack(1) == pack(3) == pack(7)
    assert any(len(files) > 1 for files in pack(0))


def test_a_tail_sent_again_is_packed_with_other_tails_not_into_the_main_stream() -> None:
    packer = Packer()
    packer.add(piece(0, 5.0), "ko")
    packer.add(replace(piece(1, 4.0), retries=1), "ko")
    packer.add(piece(2, 5.0), "ko")
    packer.add(replace(piece(3, 4.0), retries=2), "ko")
    windows = packer.take(4, flush=True)
    assert sorted([p.piece.file for p in w.placements] for w in windows) == [[0, 2], [1, 3]]


def test_a_full_window_closes_at_once() -> None:
    packer = Packer()
    packer.add(piece(0, 28.5), "ko")
    assert packer.ready == 1


def test_split_region_cuts_long_speech_at_quiet_points() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.3, 75 * SR).astype(np.float32)
    audio[int(27 * SR) : int(27.3 * SR)] = 0  # a pause inside the last tenth of the limit
    audio[int(22 * SR) : int(22.3 * SR)] = 0  # one earlier: the windows are filled past it
    ranges = split_region(audio)
    assert ranges[0][0] == 0 and ranges[-1][1] == audio.size
    assert all(b - a <= USABLE_SAMPLES for a, b in ranges)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous, no overlap
    assert 27 * SR <= ranges[0][1] <= 27.3 * SR  # the first cut lands in the late pause
    assert split_region(audio[: 10 * SR]) == [(0, 10 * SR)]


def make_window() -> Window:
    w = Window("en")
    w.add(piece(7, 5.0, start_s=100.0))  # window 0-5 s, file 7 at 100-105 s
    w.add(piece(8, 4.0, start_s=0.5))  # window 6-10 s, file 8 at 0.5-4.5 s
    w.add(piece(9, 10.0, start_s=3.0))  # window 11-21 s, file 9 at 3-13 s
    return w


def test_segments_go_to_the_piece_they_overlap_most() -> None:
    w = make_window()
    items = [
        TimedText(0.0, 4.8, "a"),
        TimedText(5.4, 9.9, "b"),  # starts in the gap: still the second piece
        TimedText(11.0, 15.0, "c"),
        TimedText(15.0, 21.5, "d"),  # runs past the piece's end: clamped
    ]
    groups, straddles = assign(w.placements, items)
    assert not straddles
    assert {i: [t.text for t in ts] for i, ts in groups.items()} == {
        0: ["a"],
        1: ["b"],
        2: ["c", "d"],
    }
    p = w.placements
    assert p[0].to_file_time(2.0) == pytest.approx(102.0)
    assert p[1].to_file_time(5.4) == pytest.approx(0.5)  # in the gap: the piece's start
    assert p[2].to_file_time(21.5) == pytest.approx(13.0)  # past the end: the piece's end


def test_a_segment_over_two_pieces_is_flagged() -> None:
    w = make_window()
    index, spill = owner(w.placements, 2.0, 9.0)
    assert index in (0, 1) and spill
    assert assign(w.placements, [TimedText(2.0, 9.0, "ab")])[1]
    # one short word of the next file run into a segment: split at its words too
    assert owner(w.placements, 1.0, 6.35) == (0, True)
    assert owner(w.placements, 1.0, 6.15) == (0, False)  # timing jitter: left whole


def test_unfinished_decode_requeues_the_rest() -> None:
    w = make_window()
    after = list(iter_pieces_after(w.placements, 13.0))
    assert [(p.piece.file, skip) for p, skip in after] == [(9, 2 * SR)]
    assert [p.piece.file for p, _ in iter_pieces_after(w.placements, 5.5)] == [8, 9]


TS = 50_000  # a made-up first timestamp token id


def ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def test_parse_tokens_complete_and_unfinished() -> None:
    tokens = [ts(0), 1, 2, ts(5.5), ts(7.0), 3, ts(11.0)]
    segments, complete = parse_tokens(tokens, TS, content_end=12.0)
    assert [(s, e) for s, e, _ in segments] == [(0.0, 5.5), (7.0, 11.0)]
    assert complete is None
    # the second segment never got its closing timestamp: it ends with the window's speech...
    open_end = [ts(0), 1, 2, ts(5.5), ts(7.0), 3, 4]
    segments, complete = parse_tokens(open_end, TS, 12.0)
    assert [(s, e) for s, e, _ in segments] == [(0.0, 5.5), (7.0, 12.0)]
    assert complete is None
    # ... unless the decode hit the length limit: then decoding must resume at 5.5
    segments, complete = parse_tokens(open_end, TS, 12.0, keep_open=False)
    assert [(s, e) for s, e, _ in segments] == [(0.0, 5.5)]
    assert complete == pytest.approx(5.5)
    # nothing after the last closed segment, but speech left: resume there
    segments, complete = parse_tokens([ts(0), 1, ts(5.5), ts(7.0)], TS, 12.0)
    assert [(s, e) for s, e, _ in segments] == [(0.0, 5.5)] and complete == pytest.approx(5.5)
    assert parse_tokens([ts(0), 1, ts(11.8), ts(11.9)], TS, 12.0)[1] is None  # nothing left
    # no timestamp pair at all: one segment up to the last timestamp (or the content's end)
    assert parse_tokens([ts(0), 1, 2], TS, 12.0) == ([(0.0, 12.0, [ts(0), 1, 2])], None)
    assert parse_tokens([ts(0), 1, ts(3.0)], TS, 12.0)[0][0][:2] == (0.0, 3.0)


def test_pieces_that_got_no_text_or_were_cut_off_go_again() -> None:
    w = make_window()
    result = WindowResult([], -0.2, 0.01, 1.2, 0.0, complete_until=13.0)
    redo = _unfinished(w.placements, result)
    assert list(redo) == [2]
    tail = redo[2]
    assert (tail.file, tail.start, tail.length, tail.retries) == (9, 5 * SR, 8 * SR, 1)
    groups = {0: [TimedText(0.0, 4.0, "a")]}
    lost = _lost(w.placements, groups, redo)
    assert list(lost) == [1] and lost[1].solo and lost[1].file == 8
    alone = Packer()
    alone.add(lost[1], "en")
    alone.add(piece(3, 2.0), "en")
    assert alone.ready == 1 and len(alone.closed[0].placements) == 1  # a window of its own
    w.placements[2].piece.retries = 2  # a tail is tried twice at most
    assert _unfinished(w.placements, result) == {}


def test_language_detection_context_fits_the_speech() -> None:
    assert [_context(f) for f in (50, 500, 501, 1000, 1001, 2600, 3000, 4000)] == [
        500, 500, 1000, 1000, 1500, 3000, 3000, 3000]  # fmt: skip


def word(start: float, end: float, text: str) -> dict[str, object]:
    return {"start": start, "end": end, "word": text, "probability": 0.9}


def untimed(words: list[dict[str, object]], content_end: float) -> WindowResult:
    text = "".join(str(w["word"]) for w in words)
    result = WindowResult([1, 2, 3], -0.2, 0.01, 1.2, 0.0)
    result.segments = [DecodedSegment(0.0, content_end, [1, 2, 3], text, words)]
    split_untimed(result, content_end)
    return result


def test_a_window_decoded_without_timestamps_is_cut_at_sentences_and_pauses() -> None:
    words = [
        word(0.5, 0.9, " 안녕하세요."), word(1.0, 1.6, " 오늘은"), word(1.7, 2.2, " 날씨가"),
        word(3.8, 4.3, " 좋네요"), word(4.4, 5.0, " 정말"), word(5.1, 5.6, " 좋아요?"),
    ]  # fmt: skip
    result = untimed(words, content_end=6.0)
    segments = [(s.start, s.end, s.text) for s in result.segments]
    assert segments == [
        (0.5, 0.9, " 안녕하세요."),  # a sentence end
        (1.0, 2.2, " 오늘은 날씨가"),  # a pause of 1.6 s
        (3.8, 5.6, " 좋네요 정말 좋아요?"),
    ]
    assert all(s.words and s.text == "".join(w["word"] for w in s.words) for s in result.segments)
    assert result.complete_until is None  # the words reach the end of the speech
    # A long sentence without a pause is cut at the segment length limit.
    many = [word(i * 0.5, i * 0.5 + 0.4, f" w{i}") for i in range(50)]
    long = untimed(many, content_end=25.0)
    assert len(long.segments) >= 3
    assert all(s.end - s.start <= MAX_SEGMENT_S + 0.5 for s in long.segments)  # + one word
    assert "".join(s.text for s in long.segments) == "".join(str(w["word"]) for w in many)


def test_a_window_without_timestamps_that_stops_early_is_resumed_after_its_last_word() -> None:
    early = untimed([word(0.5, 3.0, " 시작"), word(3.1, 9.5, " 했다가.")], content_end=24.0)
    assert early.complete_until == pytest.approx(9.5)
    w = make_window()
    redo = _unfinished(w.placements, early)
    assert redo and all(p.start >= 0 for p in redo.values())
    done = untimed([word(0.5, 3.0, " 끝까지"), word(3.1, 23.0, " 했다.")], content_end=24.0)
    assert done.complete_until is None  # the last word ends within EARLY_END_S of the speech
    assert EARLY_END_S == 2.0


def test_only_a_long_recordings_own_speech_is_one_recording() -> None:
    def long_piece(file: int, seconds: float) -> Piece:
        p = piece(file, seconds)
        p.long_form = True
        return p

    alone = Window("ko")
    alone.add(long_piece(1, 20.0))
    alone.add(long_piece(1, 5.0))
    assert alone.one_recording
    shared = Window("ko")
    shared.add(long_piece(1, 10.0))
    shared.add(long_piece(2, 10.0))
    assert not shared.one_recording  # two files: timestamps tell them apart
    short = Window("ko")
    short.add(piece(3, 5.0))
    assert not short.one_recording  # a short clip is decoded as transcribe decodes it


class DigitTokenizer:
    """Token n < 1000 is the word "w<n>"; 1000 and up are timestamps, 20 ms apart."""

    timestamp_begin = 1000

    def decode(self, tokens: list[int]) -> str:
        return "".join(f" w{t}" for t in tokens if t < self.timestamp_begin)


def _ts(seconds: float) -> int:
    return 1000 + round(seconds / 0.02)


def test_each_files_share_of_a_window_is_tested_for_loops_on_its_own() -> None:
    tok = DigitTokenizer()
    sentence = list(range(1, 25))  # the same words said in three clips
    tokens = []
    for start in (0.0, 7.0, 14.0):
        tokens += [_ts(start), *sentence, _ts(start + 5.0)]
    alone = compression_ratio(tok.decode(sentence).strip())
    together = compression_ratio(tok.decode(tokens).strip())
    assert together > 2.4 > alone  # the whole window looks like a loop; one clip does not
    three_files = [6.0, 13.0]
    assert shares_compression_ratio(tok, tokens, 20.0, three_files) == pytest.approx(alone)
    assert shares_compression_ratio(tok, tokens, 20.0, []) == pytest.approx(together)
    # a loop inside one file's share is still one
    looping = [_ts(0.0), *sentence * 3, _ts(5.0), _ts(7.0), *sentence, _ts(12.0)]
    assert shares_compression_ratio(tok, looping, 20.0, [6.0]) > 2.4


def test_file_cuts_fall_between_files_not_between_pieces_of_one_file() -> None:
    window = Window("ko")
    for f, seconds in ((0, 3.0), (0, 2.0), (1, 4.0), (2, 1.0)):
        window.add(piece(f, seconds))
    # pieces: 0-3, 4-6 (file 0), 7-11 (file 1), 12-13 (file 2): cuts midway through the gaps
    assert window.file_cuts == pytest.approx([6.5, 11.5])
