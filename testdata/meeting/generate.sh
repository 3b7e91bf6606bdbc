#!/bin/sh
# Regenerates the meeting fixtures from script.json: one tone-speech WAV per
# speaker (48 kHz mono, 9 s, silence around the words), then Ogg Opus at
# 32 kbit/s with 20 ms frames, as a browser would send. Needs Go and
# opus-tools (Debian: apt-get install opus-tools). Run from anywhere.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$root"
for speaker in alice bob; do
	go run ./transcribe/transcribetest/cmd/tonespeech \
		-script "$here/script.json" -speaker "$speaker" -out "$tmp/$speaker.wav"
	# A fixed serial makes reruns byte-identical on the same opus-tools.
	opusenc --quiet --bitrate 32 --framesize 20 \
		--serial 1 "$tmp/$speaker.wav" "$here/$speaker.opus"
done
