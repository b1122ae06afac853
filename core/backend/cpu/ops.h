/* The LLaMA building blocks as forward/backward pairs with explicit dimensions.
 * All f32, row-major. Every backward ACCUMULATES into its input gradient (+=) unless
 * its comment says otherwise, so residual branches can add into one buffer.
 * Rows are tokens: T below is a row count (B*T when a batch is flattened). */
#ifndef HL_OPS_H
#define HL_OPS_H

#include <stdint.h>

/* ---- RMSNorm (HF LlamaRMSNorm): out = w ⊙ x · rsqrt(mean(x²) + eps) ------------------ */
/* out, inp: [T, C]; w: [C]; rstd: [T] (saved for backward, may be NULL). */
void hl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int64_t T, int C, float eps);
/* dinp[T, C] += ∂/∂inp; dw[C] += ∂/∂w when dw != NULL (frozen norms pass NULL). */
void hl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int64_t T, int C);

/* ---- RoPE, Hugging Face rotate_half layout (docs/file-formats.md §4.2) ------------------------
 * Within each head of size hd, the pair (j, j + hd/2) is rotated by pos · θ^(−2j/hd). */
typedef struct {
    int max_pos, half; /* half = head_dim / 2 */
    float *cos, *sin;  /* [max_pos, half], computed in double then rounded */
} hl_rope_table;
int hl_rope_table_init(hl_rope_table *rt, int max_pos, int head_dim, float theta); /* 0 ok, -1 no memory */
void hl_rope_table_free(hl_rope_table *rt);
/* x: [rows, n_heads*head_dim] in place; row i is at position pos[i] (< max_pos). */
void hl_rope_forward(float *x, int64_t rows, int n_heads, int head_dim, const int *pos, const hl_rope_table *rt);
/* In place on the gradient of hl_rope_forward: dx = Rᵀ(θ_pos[i]) · dy per row. NOT accumulating. */
void hl_rope_backward(float *dx, int64_t rows, int n_heads, int head_dim, const int *pos, const hl_rope_table *rt);
/* Convenience: B sequences of T rows each, row (b, t) at position pos0 + t. */
void hl_rope_forward_bt(float *x, int B, int T, int n_heads, int head_dim, int pos0, const hl_rope_table *rt);
/* In place on the gradient: dx = Rᵀ(θ) · dy (rotation by −θ). NOT accumulating. */
void hl_rope_backward_bt(float *dx, int B, int T, int n_heads, int head_dim, int pos0, const hl_rope_table *rt);

/* ---- Causal multi-head attention with grouped-query heads ----------------------------
 * Sequence b has Tq query rows at positions pos0[b] + t and keys/values at positions
 * 0..Tk-1 (training: Tk = Tq = T, pos0 = 0; KV-cache decoding: Tk = cache rows).
 * Query head h reads kv head h / (n_heads / n_kv_heads). Key j is visible to query t
 * iff j <= pos0[b] + t and j < kv_len[b]. Query rows with pos0[b] + t >= q_len[b]
 * (right padding) are skipped and their output rows set to 0.
 *
 * Packed rows (n_seg > 0; the cu_seqlens convention with padding allowed at row ends):
 * q, k, v and out share one row numbering, B rows of Tq (flat row p = b*Tq + t; strides
 * q_bstride/kv_bstride must be 0). Segment e is the rows [seg_start[e], seg_start[e] +
 * seg_len[e]) of one row b; its rows are at positions 0..seg_len[e]-1 and see only the keys of
 * the same segment at positions <= their own (a block-diagonal causal mask). Segments are
 * ascending and do not overlap; rows outside every segment are padding: their output, lse and
 * dq rows are set to 0. seg_max bounds every seg_len and sizes the scratch in place of Tk
 * (Tk, pos0, q_len and kv_len are not used). One segment per row starting at column 0 with
 * seg_max = Tq computes exactly what q_len = seg_len does (same products, same bits). Work
 * (and scratch) stays linear in the context: nothing T×T exists, segments are cut in blocks of
 * HL_ATTN_QBLOCK query rows. */
typedef struct {
    int B, Tq, Tk;
    int n_heads, n_kv_heads, head_dim;
    const int *pos0;    /* [B] or NULL (all 0) */
    const int *q_len;   /* [B] valid positions (exclusive end, in positions) or NULL (no padding) */
    const int *kv_len;  /* [B] valid keys or NULL (= q_len, or Tk when q_len is NULL) */
    int64_t q_bstride;  /* rows between sequences in q / out; 0 means Tq */
    int64_t kv_bstride; /* rows between sequences in k / v; 0 means Tk */
    int lanes;          /* heads processed in parallel (threads); the scratch is sized for it; 0 = 1 */
    int n_seg;                /* > 0: packed rows (see above) */
    const int32_t *seg_start; /* [n_seg] flat first row of each segment, ascending */
    const int32_t *seg_len;   /* [n_seg] rows of each segment (0 allowed: nothing) */
    int seg_max;              /* >= every seg_len */
} hl_attn_dims;

/* Scratch floats needed by forward/backward: per lane, score blocks of HL_ATTN_QBLOCK query
 * rows × Tk keys (queries are processed in blocks, so memory is linear in the context); with
 * segments, seg_max takes the place of both Tq and Tk here. */
#define HL_ATTN_QBLOCK 64
int64_t hl_attention_scratch_floats(const hl_attn_dims *d);
/* q: [.., n_heads*hd] rows, k/v: [.., n_kv_heads*hd] rows, out like q.
 * lse: [B, n_heads, Tq] log-sum-exp of each softmax row (saved for backward), may be NULL
 * (packed rows: the entry of flat row p = b*Tq + t and head h is lse[(b*n_heads + h)*Tq + t]). */
void hl_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          const hl_attn_dims *d, float *scratch);
/* Recomputes the probabilities from q, k and lse (nothing T×T is kept between passes).
 * dq is WRITTEN (each query head owns its rows); dk, dv are accumulated (+=). */
void hl_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, const hl_attn_dims *d, float *scratch);

/* ---- SwiGLU: h = silu(g) ⊙ u, silu(z) = z / (1 + e^−z) -------------------------------- */
void hl_swiglu_forward(float *h, const float *g, const float *u, int64_t n);
/* dg += dh ⊙ u ⊙ silu'(g), du += dh ⊙ silu(g) */
void hl_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n);
/* In place: g ← dh ⊙ u ⊙ silu'(g), u ← dh ⊙ silu(g) (WRITES; saves two buffers). */
void hl_swiglu_backward_inplace(float *g, float *u, const float *dh, int64_t n);

/* ---- Row softmax ------------------------------------------------------------------- */
/* out[rows, cols] = softmax(inp) row-wise (out may alias inp). */
void hl_softmax_forward(float *out, const float *inp, int64_t rows, int cols);
/* dinp += out ⊙ (dout − <out, dout>) row-wise. */
void hl_softmax_backward(float *dinp, const float *dout, const float *out, int64_t rows, int cols);

/* ---- Cross-entropy with ignore index -100 ------------------------------------------
 * logits: [rows, V]; targets: [rows] (−100: ignored). Returns the SUM of −log p(target)
 * over non-ignored rows in double; *count gets their number. When dlogits != NULL it is
 * WRITTEN with scale · (softmax − onehot) for counted rows and 0 for ignored rows
 * (dlogits may alias logits: the loss is computed first). */
double hl_cross_entropy(float *dlogits, const float *logits, const int *targets, int64_t rows, int V, float scale,
                        int64_t *count);

#endif
