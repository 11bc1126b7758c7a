/*
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) over a column of strings, for pseudonymising identifiers
 * at ingest. The key's inner and outer pad states are computed once, so each value costs two
 * compression rounds when it is shorter than 56 bytes; the rounds run on the CPU's SHA
 * extensions where it has them (the caller may ask for the portable C rounds, which the tests
 * check too). Output is the first hex_chars lowercase
 * hex digits of each MAC, as rxradar.privacy.Pseudonymiser writes them; a NULL or empty value
 * has no hash (NULL), so an empty identifier never links two people. Tested against Python's
 * hmac module (tests/test_privacy.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef void (*Rounds)(uint32_t h[8], const unsigned char *block);

typedef struct {
    Rounds rounds; /* the compression function: portable C or the CPU's SHA extensions */
    uint32_t h[8];
    uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
    size_t used;
} Sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress_portable(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

/* The same compression with the x86 SHA extensions (FIPS 180-4 rounds in hardware): four rounds
 * per pair of sha256rnds2, the message schedule by sha256msg1/msg2. The state is held as ABEF
 * and CDGH, as the instructions want it. */
__attribute__((target("sha,ssse3,sse4.1"))) static void compress_sha_ni(uint32_t h[8], const unsigned char *p) {
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
    __m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);                                  /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);                                       /* CDGH */
    const __m128i abef = state0, cdgh = state1;
    __m128i w[4];
    for (int i = 0; i < 16; i++) {
        __m128i m;
        if (i < 4) {
            m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);
        } else { /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time */
            __m128i prev = w[(i - 1) % 4];
            m = _mm_add_epi32(_mm_sha256msg1_epu32(w[i % 4], w[(i - 3) % 4]), _mm_alignr_epi8(prev, w[(i - 2) % 4], 4));
            m = _mm_sha256msg2_epu32(m, prev);
        }
        w[i % 4] = m;
        __m128i k = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K[4 * i]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, k);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(k, 0x0E));
    }
    state0 = _mm_add_epi32(state0, abef);
    state1 = _mm_add_epi32(state1, cdgh);
    tmp = _mm_shuffle_epi32(state0, 0x1B);                        /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);                     /* DCHG */
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(tmp, state1, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(state1, tmp, 8));    /* HGFE */
}

static int has_sha_ni(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29))) return 0; /* SHA */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSSE3) && (c & bit_SSE4_1);
}
#endif

/* Chosen once when the module loads: the SHA extensions where the CPU has them. */
static Rounds fastest = compress_portable;

static void sha_init(Sha256 *s, Rounds rounds) {
    s->rounds = rounds;
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->length = 0;
    s->used = 0;
}

static void sha_update(Sha256 *s, const unsigned char *p, size_t n) {
    s->length += n;
    while (n) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            s->rounds(s->h, s->block);
            s->used = 0;
        }
    }
}

static void sha_final(Sha256 *s, unsigned char out[32]) {
    uint64_t bits = s->length * 8;
    s->block[s->used++] = 0x80;
    if (s->used > 56) { /* no room for the length: pad this block out and start another */
        memset(s->block + s->used, 0, 64 - s->used);
        s->rounds(s->h, s->block);
        s->used = 0;
    }
    memset(s->block + s->used, 0, 56 - s->used);
    for (int i = 0; i < 8; i++) s->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    s->rounds(s->h, s->block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

/* hmac_hex(data, offsets, validity, n, inner_pad, outer_pad, hex_chars, portable) -> (hex, validity, nulls)
 *   data/offsets/validity: an Arrow string array's buffers (int32 offsets; validity may be None,
 *   and the array must start at offset 0); inner_pad/outer_pad: the 64-byte key pads (RFC 2104).
 *   portable: use the portable rounds even where the CPU has SHA extensions (for tests).
 *   hex: n * hex_chars bytes; validity: a bitmap for the result. */
static PyObject *hmac_hex(PyObject *self, PyObject *args) {
    Py_buffer data, offsets, inner, outer, valid = {0};
    PyObject *valid_obj;
    Py_ssize_t n;
    int hex_chars, portable;
    if (!PyArg_ParseTuple(args, "y*y*Ony*y*ip", &data, &offsets, &valid_obj, &n, &inner, &outer, &hex_chars,
                          &portable))
        return NULL;
    PyObject *result = NULL, *hex = NULL, *bits = NULL;
    if (valid_obj != Py_None && PyObject_GetBuffer(valid_obj, &valid, PyBUF_SIMPLE) < 0) goto done;
    if (n < 0 || n > PY_SSIZE_T_MAX / 64 || inner.len != 64 || outer.len != 64 || hex_chars < 1 || hex_chars > 64 ||
        offsets.len < (Py_ssize_t)sizeof(int32_t) * (n + 1) || (valid.buf && valid.len < (n + 7) / 8)) {
        PyErr_SetString(PyExc_ValueError, "bad arguments to hmac_hex");
        goto done;
    }
    hex = PyBytes_FromStringAndSize(NULL, n * hex_chars);
    bits = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (!hex || !bits) goto done;
    char *out = PyBytes_AS_STRING(hex);
    unsigned char *vout = (unsigned char *)PyBytes_AS_STRING(bits);
    memset(vout, 0, (size_t)((n + 7) / 8));
    const int32_t *off = offsets.buf;
    const unsigned char *text = data.buf, *vin = valid.buf;
    Py_ssize_t nulls = 0;
    int bad = 0;
    Rounds rounds = portable ? compress_portable : fastest;
    Py_BEGIN_ALLOW_THREADS
    Sha256 inner0, outer0;
    sha_init(&inner0, rounds);
    sha_update(&inner0, inner.buf, 64);
    sha_init(&outer0, rounds);
    sha_update(&outer0, outer.buf, 64);
    static const char digits[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t a = off[i], b = off[i + 1];
        int present = (!vin || (vin[i / 8] >> (i % 8)) & 1) && b > a;
        if (a < 0 || b < a || b > data.len) {
            bad = 1;
            break;
        }
        if (!present) {
            memset(out + i * hex_chars, '0', (size_t)hex_chars);
            nulls++;
            continue;
        }
        unsigned char mac[32];
        Sha256 s = inner0;
        sha_update(&s, text + a, (size_t)(b - a));
        sha_final(&s, mac);
        s = outer0;
        sha_update(&s, mac, 32);
        sha_final(&s, mac);
        for (int j = 0; j < hex_chars; j++) out[i * hex_chars + j] = digits[(mac[j / 2] >> (j % 2 ? 0 : 4)) & 15];
        vout[i / 8] |= (unsigned char)(1 << (i % 8));
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "string offsets out of range");
        goto done;
    }
    result = Py_BuildValue("(OOn)", hex, bits, nulls);
done:
    Py_XDECREF(hex);
    Py_XDECREF(bits);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&inner);
    PyBuffer_Release(&outer);
    if (valid.buf) PyBuffer_Release(&valid);
    return result;
}

static PyMethodDef methods[] = {
    {"hmac_hex", hmac_hex, METH_VARARGS, "HMAC-SHA256 hex digests of an Arrow string array's values."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_keyed_hash", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__keyed_hash(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (has_sha_ni()) fastest = compress_sha_ni;
#endif
    PyObject *m = PyModule_Create(&module);
    if (m) PyModule_AddIntConstant(m, "SHA_EXTENSIONS", fastest != compress_portable);
    return m;
}
