"""faster-whisper's ``WhisperModel`` with one change, for decodes written without timestamps.

Without timestamp tokens Whisper writes a window's whole text as one segment. With word
timestamps on, faster-whisper (as openai-whisper) then moves to the end of the last word and, if
any audio is left, decodes that rest again: one more encoder pass over a window that is mostly
padding, for audio the first pass already heard. On the last window of the input (the only window
of anything shorter than 30 s, and every decode of the streaming engine) malsori keeps the first
pass and stops there, which halves the work of a short decode.
"""

from __future__ import annotations

from typing import Any

import faster_whisper


class WhisperModel(faster_whisper.WhisperModel):
    def _split_segments_by_timestamps(self, **kwargs: Any) -> Any:
        segments, seek, single_timestamp_ending = super()._split_segments_by_timestamps(**kwargs)
        last_window = kwargs["segment_size"] < self.feature_extractor.nb_max_frames
        timestamp_begin = kwargs["tokenizer"].timestamp_begin
        if last_window and not any(t >= timestamp_begin for t in kwargs["tokens"]):
            # faster-whisper has already moved past the window; "single timestamp ending" tells
            # it the window ended cleanly, so it does not move back to the last word.
            return segments, seek, True
        return segments, seek, single_timestamp_ending
