/* A reader for the zip archives torch.save writes (PyTorch >= 1.6 "zip-pickle" files), over a
 * buffer in memory. Only what those files use is accepted: one disk, STORED (uncompressed) entries,
 * no encryption; zip64 end records and zip64 extra fields are understood because torch writes
 * them. Everything is bounds-checked against the buffer; sizes come from the central directory
 * (torch sets the data-descriptor flag and leaves the local sizes zero). Entry data is checked
 * against its CRC-32 when read. Errors name the source, the entry and the byte offset. */
#ifndef DMX_ZIP_READER_H
#define DMX_ZIP_READER_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

#define DMX_ZIP_MAX_NAME 4096 /* longer entry names are refused */

typedef struct dmx_zip dmx_zip;

/* Parses the central directory of buf[0..len) (borrowed: it must outlive the dmx_zip). Refuses
 * multi-disk archives, compressed or encrypted entries (naming the entry), duplicate names and any
 * record that does not fit in the buffer. `what` names the source in messages. */
dmx_zip *dmx_zip_open(const unsigned char *buf, size_t len, const char *what, dmx_error *err);
void dmx_zip_free(dmx_zip *z);

size_t dmx_zip_count(const dmx_zip *z);
const char *dmx_zip_name(const dmx_zip *z, size_t i);
/* Index of the entry with exactly this name, or -1. */
long dmx_zip_find(const dmx_zip *z, const char *name);
/* The entry's bytes inside the buffer (after checking its local header and CRC-32); NULL with err. */
const unsigned char *dmx_zip_data(const dmx_zip *z, size_t i, size_t *len, dmx_error *err);

/* CRC-32 (IEEE, as zip uses), continuing from crc (start with 0). */
uint32_t dmx_crc32(uint32_t crc, const void *data, size_t n);

#endif
