/* oneDNN's matmul primitive for the frozen-weight products in bf16 (see gemm_internal.h).
 *
 * Why oneDNN: on CPUs with AMX (Sapphire Rapids and later) or AVX512-BF16 (Cooper Lake, Zen 4)
 * its matmul multiplies bf16 on the tile/dot-product units at several times the f32 FMA rate;
 * PyTorch's CPU bf16 linears go through the same library. Debian 12 ships it as libdnnl-dev
 * 2.6.3, whose C API (dnnl_*_desc_init + primitive descriptors) is what this file uses.
 *
 * Primitives: creating one JIT-compiles kernels (milliseconds), so each distinct (shapes,
 * strides, element type, beta) gets one, kept in a table for the process. The table is guarded
 * by a mutex; executing a primitive needs no lock (oneDNN primitives may run from several
 * threads at once). Streams are cheap CPU objects made per call, so nothing is tied to a thread
 * that may end. Execution runs on the OpenMP threads (oneDNN here is built on libgomp, the same
 * runtime as ours): called from inside a parallel region it runs on the calling thread.
 *
 * A primitive's kernel plan (blocking, how the work is split over threads) is made for the
 * thread count it will run on, so that count is part of the key: a primitive for one thread
 * (created with the calling thread's OpenMP thread count set to 1) serves calls from inside
 * our own parallel regions, one for the whole team serves calls from outside. */
#include "core/backend/cpu/gemm_internal.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifdef HL_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

static pthread_once_t dnnl_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t dnnl_eng;
static int dnnl_ok, dnnl_has_bf16;
static char dnnl_ver[32];
static const char *dnnl_isa = "unknown";

static void dnnl_start(void) {
    if (dnnl_engine_create(&dnnl_eng, dnnl_cpu, 0) != dnnl_success)
        return;
    dnnl_ok = 1;
    const dnnl_version_t *v = dnnl_version();
    snprintf(dnnl_ver, sizeof dnnl_ver, "%d.%d.%d", v->major, v->minor, v->patch);
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    /* ISA values are bit sets: each includes the bits of the ISAs below it */
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } names[] = {{dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
                 {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
                 {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
                 {dnnl_cpu_isa_avx512_core, "avx512_core"},
                 {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"},
                 {dnnl_cpu_isa_avx2, "avx2"},
                 {dnnl_cpu_isa_avx, "avx"},
                 {dnnl_cpu_isa_sse41, "sse41"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((isa & names[i].isa) == names[i].isa) {
            dnnl_isa = names[i].name;
            break;
        }
    dnnl_has_bf16 = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

int hl_dnnl_available(void) {
    pthread_once(&dnnl_once, dnnl_start);
    return dnnl_ok;
}

int hl_dnnl_bf16_native(void) { return hl_dnnl_available() && dnnl_has_bf16; }
const char *hl_dnnl_version_str(void) { return hl_dnnl_available() ? dnnl_ver : NULL; }
const char *hl_dnnl_isa_str(void) { return hl_dnnl_available() ? dnnl_isa : NULL; }

/* ---- primitive table ---------------------------------------------------------------------- */

typedef struct {
    int64_t M, N, K, lda, ldb, ldc;
    int bf16, trans_b;
    int threads; /* threads the primitive runs on: 1 inside a parallel region, else the team */
    float beta;
} mm_key;

typedef struct {
    mm_key key;
    dnnl_primitive_t prim; /* NULL: slot empty */
    int unsupported;       /* creation failed: do not try again */
} mm_slot;

#define MM_SLOTS 1024 /* open addressing; training uses ~10 shapes, decoding up to a few hundred */
static mm_slot mm_table[MM_SLOTS];
static int mm_count;
static pthread_mutex_t mm_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t key_hash(const mm_key *k) {
    const int64_t v[] = {k->M, k->N, k->K, k->lda, k->ldb, k->ldc, k->bf16 * 2 + k->trans_b, k->threads};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        h = (h ^ (uint64_t)v[i]) * 1099511628211ull;
    uint32_t b;
    memcpy(&b, &k->beta, 4);
    return (h ^ b) * 1099511628211ull;
}

static int key_eq(const mm_key *a, const mm_key *b) {
    return a->M == b->M && a->N == b->N && a->K == b->K && a->lda == b->lda && a->ldb == b->ldb &&
           a->ldc == b->ldc && a->bf16 == b->bf16 && a->trans_b == b->trans_b && a->threads == b->threads &&
           a->beta == b->beta;
}

/* The slot holding `k`, or the empty slot where it goes, or NULL when the table is full. Under mm_lock. */
static mm_slot *slot_find(const mm_key *k) {
    uint64_t h = key_hash(k);
    for (int i = 0; i < MM_SLOTS; i++) {
        mm_slot *s = &mm_table[(h + (uint64_t)i) % MM_SLOTS];
        if ((!s->prim && !s->unsupported) || key_eq(&s->key, k))
            return s;
    }
    return NULL;
}

/* Distinct implementation names oneDNN picked ("brg:avx512_core_amx", "gemm:jit", ...), for
 * benchmarks to show which kernels ran. */
static char impl_seen[256];
static pthread_mutex_t impl_lock = PTHREAD_MUTEX_INITIALIZER;

static void impl_note(const char *impl, int bf16) {
    char item[64];
    snprintf(item, sizeof item, "%s %s", bf16 ? "bf16" : "f32", impl);
    pthread_mutex_lock(&impl_lock);
    if (!strstr(impl_seen, item) && strlen(impl_seen) + strlen(item) + 3 < sizeof impl_seen) {
        if (impl_seen[0])
            strcat(impl_seen, ", ");
        strcat(impl_seen, item);
    }
    pthread_mutex_unlock(&impl_lock);
}

const char *hl_dnnl_impls(char *buf, size_t n) {
    pthread_mutex_lock(&impl_lock);
    snprintf(buf, n, "%s", impl_seen[0] ? impl_seen : "none yet");
    pthread_mutex_unlock(&impl_lock);
    return buf;
}

static dnnl_primitive_t mm_create_now(const mm_key *k);

/* oneDNN plans a primitive for the calling thread's OpenMP thread count (one inside an active
 * parallel region); set it to the key's count for the creation, then put it back. */
static dnnl_primitive_t mm_create(const mm_key *k) {
    int had = omp_get_max_threads();
    if (had != k->threads)
        omp_set_num_threads(k->threads);
    dnnl_primitive_t p = mm_create_now(k);
    if (had != k->threads)
        omp_set_num_threads(had);
    return p;
}

static dnnl_primitive_t mm_create_now(const mm_key *k) {
    dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t ad = {k->M, k->K}, as = {k->lda, 1};
    dnnl_dims_t bd = {k->K, k->N}, bs_t = {1, k->ldb}, bs_n = {k->ldb, 1};
    dnnl_dims_t cd = {k->M, k->N}, cs = {k->ldc, 1};
    if (dnnl_memory_desc_init_by_strides(&a, 2, ad, dt, as) || dnnl_memory_desc_init_by_strides(&b, 2, bd, dt, k->trans_b ? bs_t : bs_n) ||
        dnnl_memory_desc_init_by_strides(&c, 2, cd, dnnl_f32, cs))
        return NULL;
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &a, &b, NULL, &c))
        return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (k->beta != 0.0f) { /* C = beta·C + A·B: the "sum" post-op reads C before writing it */
        if (dnnl_primitive_attr_create(&attr) || dnnl_post_ops_create(&po) || dnnl_post_ops_append_sum(po, k->beta) ||
            dnnl_primitive_attr_set_post_ops(attr, po)) {
            if (po)
                dnnl_post_ops_destroy(po);
            if (attr)
                dnnl_primitive_attr_destroy(attr);
            return NULL;
        }
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    if (dnnl_primitive_desc_create(&pd, &md, attr, dnnl_eng, NULL) == dnnl_success) {
        if (dnnl_primitive_create(&prim, pd) != dnnl_success)
            prim = NULL;
        const char *impl = NULL;
        if (prim && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
            impl_note(impl, k->bf16);
        dnnl_primitive_desc_destroy(pd);
    }
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return prim;
}

/* The primitive for `k`: from the table, else created (outside the lock: JIT takes a while) and
 * stored. NULL when oneDNN cannot do it. *owned = 1 when the table had no room for it (the
 * caller destroys it after use). */
static dnnl_primitive_t mm_get(const mm_key *k, int *owned) {
    *owned = 0;
    pthread_mutex_lock(&mm_lock);
    mm_slot *s = slot_find(k);
    if (s && (s->prim || s->unsupported)) {
        dnnl_primitive_t p = s->prim;
        pthread_mutex_unlock(&mm_lock);
        return p;
    }
    pthread_mutex_unlock(&mm_lock);
    dnnl_primitive_t p = mm_create(k);
    pthread_mutex_lock(&mm_lock);
    s = slot_find(k);
    if (!s) { /* table full */
        pthread_mutex_unlock(&mm_lock);
        *owned = !!p;
        return p;
    }
    if (s->prim || s->unsupported) { /* another thread stored this shape meanwhile: use its result */
        dnnl_primitive_t kept = s->prim;
        pthread_mutex_unlock(&mm_lock);
        if (p)
            dnnl_primitive_destroy(p);
        return kept;
    }
    s->key = *k;
    s->prim = p;
    s->unsupported = !p;
    mm_count += !!p;
    pthread_mutex_unlock(&mm_lock);
    return p;
}

int hl_dnnl_cached_primitives(void) {
    pthread_mutex_lock(&mm_lock);
    int n = mm_count;
    pthread_mutex_unlock(&mm_lock);
    return n;
}

/* The thread count a call from here runs on. */
static int calling_team(void) { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

int hl_dnnl_matmul_ready(int bf16, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int trans_b,
                         float beta, int64_t ldc, int serial) {
    if (!hl_dnnl_available() || (bf16 && !dnnl_has_bf16) || M <= 0 || N <= 0 || K <= 0)
        return -1;
    mm_key k = {M, N, K, lda, ldb, ldc, !!bf16, !!trans_b, serial ? 1 : calling_team(), beta};
    int owned;
    dnnl_primitive_t p = mm_get(&k, &owned);
    if (owned)
        dnnl_primitive_destroy(p);
    return p ? 0 : -1;
}

int hl_dnnl_matmul(int bf16, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *B,
                   int64_t ldb, int trans_b, float beta, float *C, int64_t ldc) {
    if (!hl_dnnl_available() || (bf16 && !dnnl_has_bf16) || M <= 0 || N <= 0 || K <= 0)
        return -1;
    mm_key k = {M, N, K, lda, ldb, ldc, !!bf16, !!trans_b, calling_team(), beta};
    int owned;
    dnnl_primitive_t p = mm_get(&k, &owned);
    if (!p)
        return -1;
    int rc = -1;
    const_dnnl_primitive_desc_t pd;
    dnnl_stream_t st = NULL;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
    if (dnnl_primitive_get_primitive_desc(p, &pd) == dnnl_success &&
        dnnl_memory_create(&ma, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), dnnl_eng, (void *)A) ==
            dnnl_success &&
        dnnl_memory_create(&mb, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), dnnl_eng, (void *)B) ==
            dnnl_success &&
        dnnl_memory_create(&mc, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), dnnl_eng, C) ==
            dnnl_success &&
        dnnl_stream_create(&st, dnnl_eng, dnnl_stream_default_flags) == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
        if (dnnl_primitive_execute(p, st, 3, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success)
            rc = 0;
    }
    if (st)
        dnnl_stream_destroy(st);
    if (ma)
        dnnl_memory_destroy(ma);
    if (mb)
        dnnl_memory_destroy(mb);
    if (mc)
        dnnl_memory_destroy(mc);
    if (owned)
        dnnl_primitive_destroy(p);
    return rc;
}

#else /* built without oneDNN */

int hl_dnnl_available(void) { return 0; }
int hl_dnnl_bf16_native(void) { return 0; }
const char *hl_dnnl_version_str(void) { return NULL; }
const char *hl_dnnl_isa_str(void) { return NULL; }
int hl_dnnl_cached_primitives(void) { return 0; }
const char *hl_dnnl_impls(char *buf, size_t n) {
    snprintf(buf, n, "oneDNN not built in");
    return buf;
}
int hl_dnnl_matmul_ready(int bf16, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int trans_b,
                         float beta, int64_t ldc, int serial) {
    (void)bf16, (void)M, (void)N, (void)K, (void)lda, (void)ldb, (void)trans_b, (void)beta, (void)ldc, (void)serial;
    return -1;
}
int hl_dnnl_matmul(int bf16, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *B,
                   int64_t ldb, int trans_b, float beta, float *C, int64_t ldc) {
    (void)bf16, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)trans_b, (void)beta, (void)C,
        (void)ldc;
    return -1;
}

#endif
