/* A writer for zip archives of stored (uncompressed) entries, as torch.save lays them out: each
 * entry's data starts at a multiple of 64 bytes (padding in a local extra field), CRC-32 and sizes
 * in the local headers, no data descriptors. Archives past 4 GiB or 65535 entries (which would
 * need zip64 records) are refused. */
#ifndef DMX_ZIP_WRITER_H
#define DMX_ZIP_WRITER_H

#include <stddef.h>

#include "host/base/common.h"

typedef struct dmx_zip_writer dmx_zip_writer;

dmx_zip_writer *dmx_zip_writer_new(void);
/* Appends one entry (data copied). 0 or -1 with err. */
int dmx_zip_writer_add(dmx_zip_writer *w, const char *name, const void *data, size_t n, dmx_error *err);
/* Writes the central directory and hands over the archive (*out malloc'd, the caller frees it). */
int dmx_zip_writer_finish(dmx_zip_writer *w, unsigned char **out, size_t *len, dmx_error *err);
void dmx_zip_writer_free(dmx_zip_writer *w);

#endif
