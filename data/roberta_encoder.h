/* dmx_encoder over the roberta-base BPE tokenizer (data/tokenizer.h): the one place where the
 * dataset code meets the real tokenizer. */
#ifndef DMX_DATA_ROBERTA_ENCODER_H
#define DMX_DATA_ROBERTA_ENCODER_H

#include "data/dataset.h"
#include "data/tokenizer.h"

/* Fills enc with functions that use tok (borrowed; keep it alive while enc is used). */
void dmx_roberta_encoder(dmx_tokenizer *tok, dmx_encoder *enc);

#endif
