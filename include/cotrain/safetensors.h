/* safetensors.h — a model's weights as a Hugging Face safetensors file, and the config.json that
 * lets transformers load them as GPT2LMHeadModel (DESIGN.md, "Export"; `cotrain-worker --init`).
 *
 * The file (https://github.com/huggingface/safetensors) is an 8-byte little-endian header length
 * N, N bytes of JSON, then the raw little-endian tensor data. What we write:
 *   - every tensor of the model under its Hugging Face name (transformer.h.0.attn.c_attn.weight,
 *     ...), dtype F32, the model's shape: Conv1D weights (in, out), biases and LayerNorm
 *     parameters 1-D, and transformer.wte.weight (vocab_size, C) WITHOUT the padding rows;
 *   - the header with sorted keys ("__metadata__" {"format": "pt"} first, and sorted keys inside
 *     every entry), padded with spaces so the data starts at a multiple of 8 bytes;
 *   - the data in header order, back to back. The format forbids holes between tensors, so a
 *     tensor starts at a multiple of 4 bytes (F32), and of 8 whenever C is even (every tensor's
 *     size is a multiple of C floats).
 * What we read: any file the format allows whose tensors match the model. Names may also come
 * without the "transformer." prefix (as in Hugging Face's own gpt2 repository, saved from
 * GPT2Model); `lm_head.weight` (the tied head: transformers ignores it too) and the
 * `h.N.attn.bias` / `h.N.attn.masked_bias` buffers some exports carry are skipped. Only F32
 * model tensors are accepted: an F16/BF16 file is refused with the hint to convert it. */
#ifndef COTRAIN_SAFETENSORS_H
#define COTRAIN_SAFETENSORS_H

#include "cotrain/config.h"
#include "cotrain/err.h"
#include "cotrain/tensor.h"

/* The largest header we parse: the reference implementation's limit. */
enum { CT_SAFETENSORS_MAX_HEADER = 100000000 };

/* Writes the n tensors of the table `t` (tensor.h: their stored rows) of buf to `path`
 * (conventionally DIR/model.safetensors) atomically and durably: `path`.tmp.<pid>, fsync,
 * rename, fsync of the directory. The output depends only on the table and the weights. Errors:
 * CT_EIO (naming the file and the step that failed; the temp file is removed and any previous
 * `path` is untouched), CT_EINVAL (path too long), CT_ENOMEM. */
int ct_safetensors_write(const char *path, const ct_tensor_info_t *t, int n, const float *buf,
                         ct_err_t *e);

/* Fills the n tensors of the table `t` in buf from the safetensors file at `path`; the file's
 * tensors must match the table (see the file comment for the names accepted). Padding rows (past
 * stored_rows) are set to zero. The whole header is checked before any weight is touched; only an
 * I/O error while reading the data can leave buf partly overwritten (its weights are then
 * unspecified). Errors: CT_ENOENT (cannot open `path`), CT_ECORRUPT (naming the file and, where
 * there is one, the tensor and what differs: truncated file, header length beyond the file or
 * above CT_SAFETENSORS_MAX_HEADER, malformed JSON or entry, unknown dtype, data offsets out of
 * bounds, overlapping or leaving holes, a model tensor missing, twice present, of dtype other
 * than F32 or of the wrong shape, an unexpected tensor), CT_EIO, CT_ENOMEM. */
int ct_safetensors_read(const char *path, const ct_tensor_info_t *t, int n, float *buf,
                        ct_err_t *e);

/* Writes `path` (conventionally DIR/config.json), atomically: the Hugging Face GPT2Config for
 * cfg->model (vocab_size resolved, non-zero): model_type gpt2, architectures ["GPT2LMHeadModel"], vocab_size V (the real vocabulary),
 * n_positions = n_ctx = seq_len, n_embd, n_layer, n_head, activation_function gelu_new,
 * layer_norm_epsilon 1e-5, tie_word_embeddings true, torch_dtype float32, and bos/eos_token_id
 * 50256 (GPT-2's <|endoftext|>) when V >= 50257, else null (transformers' default, 50256, would
 * lie outside the vocabulary). Pretty-printed with sorted keys. Errors: CT_EIO, CT_EINVAL
 * (dims not positive). */
int ct_safetensors_write_hf_config(const char *path, const ct_config_t *cfg, ct_err_t *e);

#endif
