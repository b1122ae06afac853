/* A parsed GGUF container (core/formats/gguf.h) as a model (core/model/model.h). */
#ifndef HL_GGUF_MODEL_H
#define HL_GGUF_MODEL_H

#include "core/formats/gguf.h"
#include "core/model/model.h"

/* Fill an hl_model from a parsed llama-architecture GGUF (F32/F16/BF16 views into the image,
 * Q8_0 dequantised to owned f32; q/k rows permuted from Meta layout to rotate_half into owned
 * copies; the vocabulary, if any, copied to m->vocab). The image must outlive the model.
 * On failure m is freed. */
hl_status hl_gguf_load_model(hl_model *m, const hl_gguf *g, const char *label);

#endif
