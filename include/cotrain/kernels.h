/* kernels.h — the CPU kernels of the GPT-2 forward and backward passes.
 *
 * Conventions (after llm.c): outputs first, then inputs, then weights, then sizes. Shapes are
 * row-major; N is the number of token rows (B*T). Weight matrices use the Hugging Face Conv1D
 * layout (in, out): y = x @ W + b. Backward kernels ACCUMULATE (+=) into parameter gradients
 * (dweight, dbias, dwte, ...); what they do with activation gradients is stated per kernel.
 * Every kernel is deterministic: its result does not depend on the number of OpenMP threads,
 * except through cblas_sgemm, which is deterministic for a fixed thread count.
 * Kernels never allocate; scratch space is passed in, sized as documented. */
#ifndef COTRAIN_KERNELS_H
#define COTRAIN_KERNELS_H

#include <stddef.h>

/* Rows per block of the fixed-size row partition used for deterministic column reductions. */
enum { CT_ROW_CHUNK = 64 };

/* Scratch floats that the column reductions of a kernel over N rows and C columns need. */
size_t ct_reduce_scratch_floats(int N, int C);

/* out (N,C) = wte[tokens[n]] + wpe[n % T]; tokens (N) must be < the rows of wte. */
void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int N,
                     int T, int C);
/* dwte (V,C) += scatter of dout by token; dwpe (T,C) += sum over sequences of dout (N,C). */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int N, int T,
                      int C);

/* out (N,C) = (inp - mean) * rstd * weight + bias, eps 1e-5; also writes mean (N), rstd (N). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C);
/* dinp (N,C) += ...; dweight (C) += ...; dbias (C) += ...; scratch: ct_reduce_scratch_floats(N,
 * 2*C) floats. */
void layernorm_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                        const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) @ weight (C,OC) + bias (OC) [+ residual (N,OC)]; bias and residual may
 * be NULL. out must not alias inp; it may alias residual. */
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const float *residual, int N, int C, int OC);
/* dinp (N,C) = dout @ weight^T (OVERWRITTEN); dweight (C,OC) += inp^T @ dout; dbias (OC) +=
 * column sums of dout (skipped if NULL); scratch: ct_reduce_scratch_floats(N, OC) floats. */
void matmul_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                     const float *dout, const float *inp, const float *weight, int N, int C,
                     int OC);

/* out (N) = gelu_tanh(inp (N)). */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp = dout * gelu_tanh'(inp) (OVERWRITTEN); dinp may alias dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Causal multi-head self-attention. qkv (B,T,3C) holds [q|k|v] per row; out (B,T,C); att
 * (B,NH,T,T) receives the softmax probabilities (row t: columns <= t; columns above the
 * diagonal up to the end of the row's 64-block are 0, the rest undefined). */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv (B,T,3C) OVERWRITTEN with the gradient w.r.t. qkv; scratch: T*T floats per OpenMP
 * thread (ct_attention_scratch_floats). */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH);
size_t ct_attention_scratch_floats(int T, int nthreads);

/* Fused cross-entropy over the first V of Vp logit columns. logits (N,Vp); targets (N);
 * writes losses (N) and lse (N), the log-sum-exp of each row. */
void crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets,
                          int N, int V, int Vp);
/* logits (N,Vp) OVERWRITTEN in place by dlogits = (softmax - onehot(target)) * dloss; the padded
 * columns V..Vp-1 become 0. dloss is d(total loss)/d(each position's loss). */
void crossentropy_backward(float *logits, const float *lse, const int *targets, float dloss,
                           int N, int V, int Vp);

#endif
