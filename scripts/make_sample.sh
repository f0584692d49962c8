#!/usr/bin/env bash
# Renders samples/sample-en.flac, the clip `make demo` transcribes: an MBROLA voice (clearer than
# espeak-ng's own formant voices) driven by espeak-ng, slowly and with short gaps between words,
# so that the base model transcribes every word right. Only needed to re-render the sample:
#   apt-get install espeak-ng sox mbrola mbrola-us1   (mbrola is in Debian's contrib section,
#                                                    its voices in non-free)
set -euo pipefail
cd "$(dirname "$0")/.."
TEXT="Hello, and welcome. The voice you hear comes from a speech synthesizer, so that anyone \
can make this recording again. The program listens to the audio and writes down every word it \
hears. Then it breaks the text into short subtitles that are easy to read."
VOICE=${VOICE:-mb-us1}   # espeak-ng's name for the mbrola-us1 voice
RATE=${RATE:-120}        # words per minute (espeak-ng's default is 175)
GAP=${GAP:-3}            # pause between words, in units of 10 ms
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v "$VOICE" -s "$RATE" -g "$GAP" -w "$tmp/speech.wav" "$TEXT"
# 16 kHz mono FLAC (what Whisper decodes at)
sox "$tmp/speech.wav" -r 16000 -c 1 -b 16 samples/sample-en.flac
echo "wrote samples/sample-en.flac ($(soxi -D samples/sample-en.flac) s)"
