/*
 * Feeds a fragment stream exported by tests/interop/fuota_decoder/test_fuota_decoder_interop.py
 * to a TS004 decoder with LoRaMac-node's FragDecoder API (FragDecoderInit / FragDecoderProcess,
 * the new file-handling API with Write/Read callbacks) and checks the rebuilt image.
 *
 * Stream file (text, one item per line):
 *   nb_frag M | frag_size S | image_size L | image <hex> | fragment <N> <hex of S octets>
 * FragDecoderProcess returns FRAG_SESSION_ONGOING (-1) until the block is complete, then the
 * number of lost fragments (0 for none, and also 0 with MatrixError set: too many lost).
 * Exit status: 0 image rebuilt and equal, 1 not rebuilt or different, 2 bad input.
 * This file is ours; FragDecoder.c/.h are not in this repository (see run_reference_decoder.sh).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "FragDecoder.h"

static uint8_t *block;
static uint32_t block_size;

static int8_t block_write(uint32_t addr, uint8_t *data, uint32_t size)
{
    if (addr + size > block_size) return -1;
    memcpy(block + addr, data, size);
    return 0;
}

static int8_t block_read(uint32_t addr, uint8_t *data, uint32_t size)
{
    if (addr + size > block_size) return -1;
    memcpy(data, block + addr, size);
    return 0;
}

static long from_hex(const char *hex, uint8_t *out, size_t capacity)
{
    size_t length = strlen(hex);
    if (length % 2 != 0 || length / 2 > capacity) return -1;
    for (size_t i = 0; i < length / 2; i++) {
        unsigned int value;
        if (sscanf(hex + 2 * i, "%2x", &value) != 1) return -1;
        out[i] = (uint8_t)value;
    }
    return (long)(length / 2);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s STREAM_FILE\n", argv[0]);
        return 2;
    }
    FILE *stream = fopen(argv[1], "r");
    if (stream == NULL) { perror(argv[1]); return 2; }
    static char word[64], hex[1 << 20];
    static uint8_t image[1 << 19], fragment[256];
    unsigned int nb_frag = 0, frag_size = 0, image_size = 0, fed = 0;
    long image_length = -1;
    int32_t status = FRAG_SESSION_NOT_STARTED;
    FragDecoderCallbacks_t callbacks = { block_write, block_read };

    while (fscanf(stream, "%63s", word) == 1) {
        if (strcmp(word, "nb_frag") == 0 && fscanf(stream, "%u", &nb_frag) == 1) continue;
        if (strcmp(word, "frag_size") == 0 && fscanf(stream, "%u", &frag_size) == 1) continue;
        if (strcmp(word, "image_size") == 0 && fscanf(stream, "%u", &image_size) == 1) continue;
        if (strcmp(word, "image") == 0 && fscanf(stream, "%1048575s", hex) == 1) {
            image_length = from_hex(hex, image, sizeof image);
            continue;
        }
        unsigned int n;
        if (strcmp(word, "fragment") == 0 && fscanf(stream, "%u %1048575s", &n, hex) == 2) {
            if (block == NULL) {
                if (nb_frag == 0 || frag_size == 0 || frag_size > 255) { fprintf(stderr, "header missing\n"); return 2; }
                block_size = nb_frag * frag_size;
                block = calloc(block_size, 1);
                if (nb_frag > FRAG_MAX_NB || frag_size > FRAG_MAX_SIZE) {
                    fprintf(stderr, "FragDecoder built for at most %d fragments of %d octets\n", FRAG_MAX_NB, FRAG_MAX_SIZE);
                    return 2;
                }
                FragDecoderInit((uint16_t)nb_frag, (uint8_t)frag_size, &callbacks);
            }
            if (from_hex(hex, fragment, sizeof fragment) != (long)frag_size) { fprintf(stderr, "fragment %u: bad length\n", n); return 2; }
            fed++;
            /* done: the number of lost fragments (>= 0); 0 also when MatrixError is set */
            status = FragDecoderProcess((uint16_t)n, fragment);
            if (status >= 0) break;
            continue;
        }
        fprintf(stderr, "bad line starting with %s\n", word);
        return 2;
    }
    fclose(stream);
    FragDecoderStatus_t decoder = FragDecoderGetStatus();
    printf("fragments fed %u, FragNbRx %u, FragNbLost %u, MatrixError %u, status %d\n",
           fed, decoder.FragNbRx, decoder.FragNbLost, decoder.MatrixError, (int)status);
    if (status < 0 || decoder.MatrixError) { printf("NOT REBUILT\n"); return 1; }
    if (image_length != (long)image_size || image_size > block_size || memcmp(block, image, image_size) != 0) {
        printf("REBUILT BLOCK DIFFERS FROM THE IMAGE\n");
        return 1;
    }
    printf("REBUILT: %u octets equal to the image\n", image_size);
    return 0;
}
