#!/usr/bin/env bash
# One video frame with an SRT file's cues burned in (ffmpeg's subtitles filter, libass, a Hangul
# font), over a plain background: what docs/subtitles.md shows.
#   scripts/subtitle_frame.sh SUBTITLES.srt SECONDS OUT.png
set -euo pipefail
srt=$1 at=$2 out=$3
font=${FONT:-NanumGothic}   # Debian's fonts-nanum
# the filter's own escaping: a path with : or ' would need more; copy the file somewhere plain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$srt" "$tmp/cues.srt"
end=$(awk -v t="$at" 'BEGIN { print t + 1 }')
ffmpeg -nostdin -hide_banner -loglevel error -y \
  -f lavfi -i "color=c=0x2b3a4a:s=854x480:d=$end:r=24" \
  -vf "subtitles=$tmp/cues.srt:force_style='FontName=$font,FontSize=22,Outline=1,Shadow=0'" \
  -ss "$at" -frames:v 1 "$out"
echo "wrote $out"
