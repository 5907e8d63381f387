#!/bin/sh
# Rebuild an image from our FUOTA server's DataFragment stream with LoRaMac-node's TS004 decoder
# (FragDecoder.c, Semtech, Revised BSD). Local use only, never in CI: nothing here downloads, and
# LoRaMac-node's code is not part of this repository — bring your own checkout:
#
#   git clone https://github.com/Lora-net/LoRaMac-node /tmp/LoRaMac-node
#   tests/interop/fuota_decoder/run_reference_decoder.sh /tmp/LoRaMac-node [STREAM_FILE]
#
# Without STREAM_FILE the stream is exported first by the pytest test (a campaign with FEC whose
# device lost some fragments; FUOTA_FRAGMENT_STREAM=path writes it there). The same test runs the
# reference decoder itself when LORAMAC_NODE_DIR points at a checkout and a C compiler is found.
# FragDecoder.h fixes its buffer sizes with #defines (FRAG_MAX_NB 21, FRAG_MAX_SIZE 50,
# FRAG_MAX_REDUNDANCY 5 as shipped); the build copy gets room for a few-KiB image at DR5.
set -eu
checkout=${1:?usage: run_reference_decoder.sh LORAMAC_NODE_DIR [STREAM_FILE]}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
packages="$checkout/src/apps/LoRaMac/common/LmHandler/packages"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
stream=${2:-$build/stream.txt}
if [ $# -lt 2 ]; then
    (cd "$repo" && FUOTA_FRAGMENT_STREAM="$stream" python3 -m pytest -q \
        tests/interop/fuota_decoder/test_fuota_decoder_interop.py -k export)
fi
cp "$packages/FragDecoder.c" "$packages/FragDecoder.h" "$build/"
sed -i -e 's/^#define FRAG_MAX_NB .*/#define FRAG_MAX_NB 1024/' \
       -e 's/^#define FRAG_MAX_SIZE .*/#define FRAG_MAX_SIZE 242/' \
       -e 's/^#define FRAG_MAX_REDUNDANCY .*/#define FRAG_MAX_REDUNDANCY 512/' "$build/FragDecoder.h"
${CC:-cc} -O1 -std=c99 -I"$build" -I"$here/shim" -o "$build/fragdecoder" \
    "$here/fragdecoder_harness.c" "$build/FragDecoder.c"
"$build/fragdecoder" "$stream"
