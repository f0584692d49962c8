#!/usr/bin/env bash
# Debian packages the tests need: espeak-ng and sox render synthetic speech, ffmpeg encodes test
# files (mp3, opus, webm, mp4). malsori itself decodes with PyAV, which bundles FFmpeg's libraries.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
# Headless browsers for the web page's tests (tests/web, driven by Playwright).
command -v chromium >/dev/null || need+=(chromium)
command -v firefox-esr >/dev/null || need+=(firefox-esr)
# A Hangul font, so that the browsers draw the page's Korean (its name, Korean transcripts) in
# the tests' screenshots instead of empty boxes.
fc-list :lang=ko 2>/dev/null | grep -q . || need+=(fonts-nanum)
# PortAudio for microphone capture in `malsori live` (the sounddevice package loads it).
ldconfig -p | grep -q libportaudio || need+=(libportaudio2)
# The deployment tests (tests/deploy): nginx and Prometheus (with promtool) run on loopback in
# front of real replicas; docker-compose (v1, Debian's) validates deploy/compose.yaml. PostgreSQL
# comes from scripts/ci-postgres.sh.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
# A C compiler and Python's headers: the diarize extra's resemblyzer depends on webrtcvad, which
# PyPI has as source only.
command -v cc >/dev/null || need+=(gcc)
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null || need+=(python3-dev)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null; then
  SUDO="sudo"
else
  echo "error: need root or sudo to install ${need[*]} (apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
