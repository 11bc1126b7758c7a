/*
 * One pass over ASAP text: segments split into the elements rxradar keeps, with the hierarchy
 * PHA > PAT > DSP > PRE resolved as it goes. The result is Arrow-layout buffers (offsets, data,
 * validity) that rxradar.ingest.asap_scan wraps without copying; every check and every meaning
 * stays in SQL (asap_records.sql). This file only knows how ASAP text is cut up:
 *
 *   - a segment ends at the terminator (TH09); CR and LF anywhere are not data (they only count
 *     lines), and a segment with nothing else in it is no segment at all;
 *   - elements are split at the separator (the character after TH); spaces around an element
 *     are padding, and an empty element is NULL;
 *   - the segment id is element 0. PHA, PAT, DSP and PRE rows keep the elements the caller asks
 *     for; TP, TT and unrecognised ids become "marks" (id, first two elements) for the file-level
 *     checks; IS, CDI and AIR are passed over.
 *
 * Text is cut at the caller's chunk boundaries, so the running position, line and hierarchy
 * travel in and out as a state tuple (see STATE_FIELDS). Text is decoded one element at a time:
 * an element that is valid UTF-8 is kept as it is, any other is read as Latin-1 and written out
 * as UTF-8, so a file mixing the two (one pharmacy system's names in each) stores no mojibake.
 * A NUL byte cannot be text: it is left out, and the row says its segment held one (the caller
 * rejects the record, not the file). A Scanner keeps its rows over any number of chunks and files until they
 * are taken, so a batch of many small files costs one set of tables, not one per file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KINDS 4 /* PHA, PAT, DSP, PRE: the hierarchy */
#define MARKS KINDS /* the table of TP, TT and unrecognised segments, after the kinds */
#define TABLES (KINDS + 1)
#define MAX_ELEMENTS 64
#define MAX_CHUNK ((Py_ssize_t)512 << 20)
#define TOO_LARGE (-2) /* a column would pass 2 GB before take(): distinct from out of memory */

enum { PHA, PAT, DSP, PRE };
enum { FLAG_UNREADABLE = 1, FLAG_NUL = 2 }; /* bits of a row's flags */

/* ---- growable buffers ------------------------------------------------------------------- */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t extra) {
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->data, (size_t)cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int buf_reserve(Buf *b, Py_ssize_t extra) {
    return b->len + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static inline int buf_put(Buf *b, const void *src, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static void buf_free(Buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* A buffer handed over to Python without a copy: a Block owns the memory a Buf grew and frees
 * it when the last Arrow array wrapping it (pa.py_buffer, through the buffer protocol) is gone. */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t len;
} Block;

static int Block_getbuffer(Block *self, Py_buffer *view, int flags) {
    static char empty[1];
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data ? self->data : empty, self->len, 1, flags);
}

static void Block_dealloc(Block *self) {
    free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs Block_as_buffer = {.bf_getbuffer = (getbufferproc)Block_getbuffer};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rxradar.ingest._asap_scan.Block",
    .tp_basicsize = sizeof(Block),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Memory the scanner filled, read in place through the buffer protocol.",
    .tp_dealloc = (destructor)Block_dealloc,
    .tp_as_buffer = &Block_as_buffer,
};

/* The Buf's memory as a Block; the Buf is left empty (it no longer owns the memory). */
static PyObject *buf_handoff(Buf *b) {
    Block *block = PyObject_New(Block, &BlockType);
    if (!block) return NULL;
    block->data = b->data;
    block->len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return (PyObject *)block;
}

/* A string column in Arrow layout: int32 offsets, UTF-8 data, validity bitmap. */
typedef struct {
    Buf offsets, data, valid;
    Py_ssize_t rows, nulls;
} StrCol;

static int strcol_init(StrCol *c) {
    int32_t zero = 0;
    memset(c, 0, sizeof *c);
    return buf_put(&c->offsets, &zero, sizeof zero);
}

/* Short values are copied 16 bytes at a time (the buffer keeps 16 bytes of slack), which is
 * most ASAP elements: dates, codes, identifiers. */
#define SLACK 16

/* Add value s[0..n) (NULL for none); bytes up to limit may be read. */
static inline int strcol_add(StrCol *c, const char *s, Py_ssize_t n, const char *limit) {
    Py_ssize_t bit = c->rows;
    if (c->data.len + n > INT32_MAX - SLACK) return TOO_LARGE; /* Arrow string offsets are int32 */
    if (bit % 8 == 0) {
        if (buf_reserve(&c->valid, 1) < 0) return -1;
        c->valid.data[c->valid.len++] = 0;
    }
    if (s == NULL) {
        c->nulls++;
    } else {
        c->valid.data[bit / 8] |= (char)(1 << (bit % 8));
        if (buf_reserve(&c->data, n + SLACK) < 0) return -1;
        char *out = c->data.data + c->data.len;
        if (n <= SLACK && s + SLACK <= limit) {
            memcpy(out, s, SLACK);
        } else {
            memcpy(out, s, (size_t)n);
        }
        c->data.len += n;
    }
    if (buf_reserve(&c->offsets, sizeof(int32_t)) < 0) return -1;
    *(int32_t *)(c->offsets.data + c->offsets.len) = (int32_t)c->data.len;
    c->offsets.len += sizeof(int32_t);
    c->rows++;
    return 0;
}

static void strcol_free(StrCol *c) {
    buf_free(&c->offsets);
    buf_free(&c->data);
    buf_free(&c->valid);
}

static PyObject *strcol_tuple(StrCol *c) {
    return Py_BuildValue("(NNNn)", buf_handoff(&c->data), buf_handoff(&c->offsets), buf_handoff(&c->valid), c->nulls);
}

/* ---- the rows of one kind ---------------------------------------------------------------- */
/* Integer columns of every table: row (batch-wide, per kind; -1 for marks), file_no, pos (segment
 * number in the file), line, offset and end in the stream, and the parent (PHA row for PAT; PAT
 * row for DSP; DSP row for PRE; PHA position for a mark); DSP rows also carry their PHA row and
 * whether an unreadable segment came after their PAT (FLAG_UNREADABLE); every row says whether its
 * segment held a NUL byte (FLAG_NUL). Element 0 (the id) may be kept too. */
typedef struct {
    int nkeep;
    int keep[MAX_ELEMENTS];
    StrCol cols[MAX_ELEMENTS];
    Buf row, file_no, pos, line, off, end, parent, pha, flags;
    Py_ssize_t rows;
} Rows;

static int rows_init(Rows *r, PyObject *keep) {
    memset(r, 0, sizeof *r);
    Py_ssize_t n = PySequence_Size(keep);
    if (n < 0) return -1;
    if (n > MAX_ELEMENTS) {
        PyErr_SetString(PyExc_ValueError, "too many elements to keep");
        return -1;
    }
    r->nkeep = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(keep, i);
        if (!item) return -1;
        long k = PyLong_AsLong(item);
        Py_DECREF(item);
        if (k < 0 || k >= MAX_ELEMENTS) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "element index out of range");
            return -1;
        }
        r->keep[i] = (int)k;
        if (strcol_init(&r->cols[i]) < 0) return -1;
    }
    return 0;
}

static void rows_free(Rows *r) {
    for (int i = 0; i < r->nkeep; i++) strcol_free(&r->cols[i]);
    buf_free(&r->row);
    buf_free(&r->file_no);
    buf_free(&r->pos);
    buf_free(&r->line);
    buf_free(&r->off);
    buf_free(&r->end);
    buf_free(&r->parent);
    buf_free(&r->pha);
    buf_free(&r->flags);
}

/* Empty the buffers, keeping which elements are kept. */
static int rows_clear(Rows *r) {
    rows_free(r);
    int nkeep = r->nkeep, keep[MAX_ELEMENTS];
    memcpy(keep, r->keep, sizeof keep);
    memset(r, 0, sizeof *r);
    r->nkeep = nkeep;
    memcpy(r->keep, keep, sizeof keep);
    for (int i = 0; i < nkeep; i++)
        if (strcol_init(&r->cols[i]) < 0) return -1;
    return 0;
}

static PyObject *rows_tuple(Rows *r) {
    PyObject *cols = PyTuple_New(r->nkeep);
    if (!cols) return NULL;
    for (int i = 0; i < r->nkeep; i++) {
        PyObject *t = strcol_tuple(&r->cols[i]);
        if (!t) {
            Py_DECREF(cols);
            return NULL;
        }
        PyTuple_SET_ITEM(cols, i, t);
    }
    return Py_BuildValue("{s:n,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "rows", r->rows, "elements", cols,
                         "row", buf_handoff(&r->row), "file_no", buf_handoff(&r->file_no), "pos", buf_handoff(&r->pos),
                         "line", buf_handoff(&r->line), "off", buf_handoff(&r->off), "end", buf_handoff(&r->end), "parent", buf_handoff(&r->parent), "pha", buf_handoff(&r->pha),
                         "flags", buf_handoff(&r->flags));
}

/* ---- one segment ------------------------------------------------------------------------- */
typedef struct {
    const char *text;             /* the segment without CR/LF (UTF-8): the input itself, or scratch */
    Py_ssize_t len;
    const char *limit;            /* the end of readable memory after text (input or scratch) */
    char sep;
    Buf scratch;                  /* used when CR/LF sit inside the segment, or Latin-1 needs UTF-8 */
    Py_ssize_t start[MAX_ELEMENTS + 1]; /* element k is text[start[k] .. start[k+1]-1) */
    int n;                        /* elements seen (capped at MAX_ELEMENTS) */
    int nul;                      /* the segment held a NUL byte (left out of text) */
} Segment;

/* Eight bytes at a time: a mask with the high bit set in each byte of v equal to b. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t bytes_equal(uint64_t v, unsigned char b) {
    uint64_t x = v ^ (ONES * b);
    return (x - ONES) & ~x & HIGHS;
}

static inline uint64_t load8(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void split_elements(Segment *s, char sep) {
    const unsigned char *t = (const unsigned char *)s->text;
    Py_ssize_t k = 0;
    s->start[0] = 0;
    s->n = 1;
    for (; k + 8 <= s->len && s->n < MAX_ELEMENTS; k += 8) {
        uint64_t m = bytes_equal(load8(t + k), (unsigned char)sep);
        /* bytes_equal may flag a byte after a true match (borrow); check each candidate */
        while (m && s->n < MAX_ELEMENTS) {
            int b = __builtin_ctzll(m) / 8;
            if (t[k + b] == (unsigned char)sep) s->start[s->n++] = k + b + 1;
            m &= m - 1;
        }
    }
    for (; k < s->len; k++)
        if (t[k] == (unsigned char)sep && s->n < MAX_ELEMENTS) s->start[s->n++] = k + 1;
    s->start[s->n] = s->len + 1; /* the last element ends at the end of the text */
}

/* Whether raw[0..len) holds a CR or LF, a byte outside ASCII, or (when asked) a NUL. */
static int needs_cleaning(const unsigned char *raw, Py_ssize_t len, int check_nul) {
    Py_ssize_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t v = load8(raw + k);
        if (bytes_equal(v, '\n') | bytes_equal(v, '\r') | (v & HIGHS) | (check_nul ? bytes_equal(v, 0) : 0)) break;
    }
    for (; k < len; k++) {
        unsigned char c = raw[k];
        if (c == '\n' || c == '\r' || c >= 0x80 || (check_nul && c == 0)) return 1;
    }
    return 0;
}

/* Whether t[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or values past
 * U+10FFFF). */
static int valid_utf8(const unsigned char *t, Py_ssize_t n) {
    Py_ssize_t k = 0;
    while (k < n) {
        unsigned char c = t[k];
        if (c < 0x80) {
            k++;
            continue;
        }
        int more;
        unsigned int lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (k + more >= n) return 0; /* cut short */
        for (int j = 1; j <= more; j++) {
            unsigned char d = t[k + j];
            if (d < (j == 1 ? lo : 0x80) || d > (j == 1 ? hi : 0xBF)) return 0;
        }
        k += 1 + more;
    }
    return 1;
}

/* Point the segment at raw[0..len) when it is clean, else at a cleaned copy: CR, LF and NUL left
 * out, each element kept as UTF-8 when it is that, else read as Latin-1. Returns the number of
 * line ends inside the segment, or -1 when out of memory. Elements are split later, and only for
 * segments whose rows this call emits. */
static long long take_segment(Segment *s, const unsigned char *raw, Py_ssize_t len, const unsigned char *end,
                              char sep, int check_nul) {
    s->nul = 0;
    s->sep = sep;
    if (!needs_cleaning(raw, len, check_nul)) {
        s->text = (const char *)raw;
        s->len = len;
        s->limit = (const char *)end;
        return 0;
    }
    long long newlines = 0;
    s->scratch.len = 0;
    if (buf_reserve(&s->scratch, 2 * len + SLACK) < 0) return -1;
    unsigned char *out = (unsigned char *)s->scratch.data;
    Py_ssize_t m = 0, from = 0; /* out[from..m) is the element being copied */
    int high = 0;               /* bytes >= 0x80 in it */
    for (Py_ssize_t k = 0; k <= len; k++) {
        if (k == len || raw[k] == (unsigned char)sep) {
            if (high && !valid_utf8(out + from, m - from)) {
                /* Latin-1: each high byte becomes two; widen in place from the end. */
                Py_ssize_t r = m, w = m + high;
                while (r > from) {
                    unsigned char c = out[--r];
                    if (c >= 0x80) {
                        out[--w] = (unsigned char)(0x80 | (c & 0x3F));
                        out[--w] = (unsigned char)(0xC0 | (c >> 6));
                    } else {
                        out[--w] = c;
                    }
                }
                m += high;
            }
            if (k == len) break;
            out[m++] = (unsigned char)sep;
            from = m;
            high = 0;
            continue;
        }
        unsigned char c = raw[k];
        if (c == '\n') {
            newlines++;
        } else if (c == '\r') {
            continue;
        } else if (c == 0) {
            s->nul = 1;
        } else {
            high += c >= 0x80;
            out[m++] = c;
        }
    }
    s->text = (const char *)out;
    s->len = m;
    s->limit = (const char *)out + s->scratch.cap;
    return newlines;
}

/* The segment id (element 0) trimmed of spaces, or NULL when empty; needs no split. */
static const char *segment_id(const Segment *s, Py_ssize_t *len) {
    const char *a = s->text, *end = s->text + s->len;
    const char *b = memchr(a, s->sep, (size_t)s->len);
    if (!b) b = end;
    while (a < b && *a == ' ') a++;
    while (b > a && b[-1] == ' ') b--;
    *len = b - a;
    return *len ? a : NULL;
}

/* Element k trimmed of spaces, or NULL when absent or empty (after split_elements). */
static const char *element(const Segment *s, int k, Py_ssize_t *len) {
    if (k >= s->n) return NULL;
    const char *a = s->text + s->start[k];
    const char *b = s->text + s->start[k + 1] - 1; /* one past the end, before the separator */
    while (a < b && *a == ' ') a++;
    while (b > a && b[-1] == ' ') b--;
    *len = b - a;
    return *len ? a : NULL;
}

/* The state that travels between chunks, in this order. */
enum {
    S_SEGMENT, S_LINE, S_OFFSET, S_PHA_ROWS, S_PAT_ROWS, S_DSP_ROWS, S_PRE_ROWS, S_PHA_ROW, S_PHA_POS,
    S_PAT_ROW, S_DSP_BEFORE, S_UNREADABLE, STATE_FIELDS
};

typedef struct {
    Rows rows[TABLES]; /* PHA, PAT, DSP, PRE, then marks */
    int file_no; /* of the text being scanned */
    int emit; /* bit k: emit rows of table k (PHA, PAT, DSP, PRE, marks) */
    long long st[STATE_FIELDS];
} Scan;

static inline int put_i32(Buf *b, long long v) {
    if (buf_reserve(b, sizeof(int32_t)) < 0) return -1;
    *(int32_t *)(b->data + b->len) = (int32_t)v;
    b->len += sizeof(int32_t);
    return 0;
}

static inline int put_i64(Buf *b, long long v) {
    if (buf_reserve(b, sizeof(int64_t)) < 0) return -1;
    *(int64_t *)(b->data + b->len) = (int64_t)v;
    b->len += sizeof(int64_t);
    return 0;
}

static int kind_of(const char *id, Py_ssize_t n) {
    if (n != 3) return -1;
    if (memcmp(id, "PHA", 3) == 0) return PHA;
    if (memcmp(id, "PAT", 3) == 0) return PAT;
    if (memcmp(id, "DSP", 3) == 0) return DSP;
    if (memcmp(id, "PRE", 3) == 0) return PRE;
    return -1;
}

static int passed_over(const char *id, Py_ssize_t n) {
    return (n == 2 && memcmp(id, "IS", 2) == 0) || (n == 3 && (memcmp(id, "CDI", 3) == 0 || memcmp(id, "AIR", 3) == 0));
}

static int is_trailer(const char *id, Py_ssize_t n) {
    return n == 2 && (memcmp(id, "TP", 2) == 0 || memcmp(id, "TT", 2) == 0);
}

static int add_element(StrCol *c, const Segment *s, int k) {
    Py_ssize_t len = 0;
    const char *e = element(s, k, &len);
    return strcol_add(c, e, len, s->limit);
}

/* Append one row to table t, if this scanner emits it: the kept elements and the integers. */
static int emit_row(Scan *sc, int t, Segment *s, long long row, long long parent, long long pha, int flags,
                    long long pos, long long line, long long off, long long end) {
    if (!(sc->emit & (1 << t))) return 0;
    Rows *r = &sc->rows[t];
    split_elements(s, s->sep);
    for (int i = 0; i < r->nkeep; i++) {
        int rc = add_element(&r->cols[i], s, r->keep[i]);
        if (rc < 0) return rc;
    }
    int8_t u = (int8_t)(flags | (s->nul ? FLAG_NUL : 0));
    if (put_i32(&r->row, row) < 0 || put_i32(&r->file_no, sc->file_no) < 0 || put_i32(&r->pos, pos) < 0 ||
        put_i32(&r->line, line) < 0 || put_i64(&r->off, off) < 0 || put_i64(&r->end, end) < 0 ||
        put_i32(&r->parent, parent) < 0 || put_i32(&r->pha, pha) < 0 || buf_put(&r->flags, &u, 1) < 0)
        return -1;
    r->rows++;
    return 0;
}

static int finish_segment(Scan *sc, Segment *s, long long line, long long off, long long end) {
    long long *st = sc->st;
    st[S_SEGMENT]++;
    long long pos = st[S_SEGMENT];
    Py_ssize_t idlen = 0;
    const char *id = segment_id(s, &idlen);
    int kind = id ? kind_of(id, idlen) : -1;
    long long dsp_before = st[S_DSP_BEFORE];
    st[S_DSP_BEFORE] = -1;
    if (kind < 0) {
        if (id && passed_over(id, idlen)) return 0;
        if (!(id && is_trailer(id, idlen))) st[S_UNREADABLE] = 1;
        return emit_row(sc, MARKS, s, -1, st[S_PHA_POS], -1, 0, pos, line, off, end);
    }
    long long parent = -1, pha = -1, row = -1;
    int flags = 0;
    switch (kind) {
    case PHA:
        row = st[S_PHA_ROWS]++;
        st[S_PHA_ROW] = row;
        st[S_PHA_POS] = pos;
        st[S_PAT_ROW] = -1; /* a patient belongs to one pharmacy */
        break;
    case PAT:
        row = st[S_PAT_ROWS]++;
        parent = st[S_PHA_ROW];
        st[S_PAT_ROW] = row;
        st[S_UNREADABLE] = 0;
        break;
    case DSP:
        row = st[S_DSP_ROWS]++;
        parent = st[S_PAT_ROW];
        pha = st[S_PHA_ROW];
        flags = st[S_PAT_ROW] >= 0 && st[S_UNREADABLE] ? FLAG_UNREADABLE : 0;
        st[S_DSP_BEFORE] = row;
        break;
    case PRE:
        row = st[S_PRE_ROWS]++;
        parent = dsp_before;
        break;
    }
    return emit_row(sc, kind, s, row, parent, pha, flags, pos, line, off, end);
}

static void scan_free(Scan *sc) {
    for (int t = 0; t < TABLES; t++) rows_free(&sc->rows[t]);
}

/* ---- the Python type --------------------------------------------------------------------- */
/* Scanner(keep, emit): rows accumulate over any number of scan() calls (chunks of one file, then
 * other files) until take() hands them over, so a batch of many small files becomes one set of
 * tables.
 *   keep: five sequences of element numbers to keep (0 is the id), for PHA, PAT, DSP, PRE and
 *   marks;
 *   emit: bit t set to emit rows of table t (PHA, PAT, DSP, PRE, marks). Two scanners
 *   with complementary masks can scan the same chunk on two threads: each follows the whole
 *   hierarchy and returns the same state, but copies out only its own kinds' elements. */
typedef struct {
    PyObject_HEAD
    Scan sc;
    Segment seg;
    int busy; /* a scan is running with the GIL released */
} Scanner;

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    PyObject *keep;
    int emit;
    if (!PyArg_ParseTuple(args, "Oi", &keep, &emit)) return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "scanner is scanning");
        return -1;
    }
    if (!PySequence_Check(keep) || PySequence_Size(keep) != TABLES) {
        PyErr_SetString(PyExc_ValueError, "keep must list elements for PHA, PAT, DSP, PRE and marks");
        return -1;
    }
    scan_free(&self->sc);
    memset(&self->sc, 0, sizeof self->sc);
    self->sc.emit = emit;
    for (int t = 0; t < TABLES; t++) {
        PyObject *ks = PySequence_GetItem(keep, t);
        if (!ks) return -1;
        int bad = rows_init(&self->sc.rows[t], ks);
        Py_DECREF(ks);
        if (bad < 0) {
            if (!PyErr_Occurred()) PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    scan_free(&self->sc);
    buf_free(&self->seg.scratch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* scan(data, sep, term, check_nul, final, state, file_no) -> state; sep and term are one byte each
 *   check_nul: the chunk may hold NUL bytes (look for them in each segment);
 *   state: STATE_FIELDS integers (see the enum), as returned for the previous chunk of the file;
 *   final: the text after the last terminator is a segment too (a file cut short). */
static PyObject *Scanner_scan(Scanner *self, PyObject *args) {
    Py_buffer data;
    char sep, term;
    int check_nul, final, file_no;
    PyObject *state;
    if (!PyArg_ParseTuple(args, "y*ccppOi", &data, &sep, &term, &check_nul, &final, &state, &file_no)) return NULL;
    PyObject *result = NULL;
    Scan *sc = &self->sc;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "scanner is already scanning");
        goto done;
    }
    if (!PySequence_Check(state) || PySequence_Size(state) != STATE_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "state has the wrong number of fields");
        goto done;
    }
    for (int i = 0; i < STATE_FIELDS; i++) {
        PyObject *v = PySequence_GetItem(state, i);
        if (!v) goto done;
        sc->st[i] = PyLong_AsLongLong(v);
        Py_DECREF(v);
        if (PyErr_Occurred()) goto done;
    }
    sc->file_no = file_no;
    const unsigned char *p = data.buf;
    Py_ssize_t n = data.len;
    if (n > MAX_CHUNK) { /* keeps every column's int32 offsets in range, Latin-1 doubling included */
        PyErr_SetString(PyExc_ValueError, "chunk larger than 512 MB");
        goto done;
    }
    long long line = sc->st[S_LINE], base = sc->st[S_OFFSET];
    int failed = 0, unterminated = 0;
    Segment *seg = &self->seg;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t i = 0;
    while (i < n && !failed) {
        unsigned char ch = p[i];
        if (ch == '\n') {
            line++;
            i++;
            continue;
        }
        if (ch == '\r' || ch == (unsigned char)term) { /* between segments, or an empty segment */
            i++;
            continue;
        }
        const unsigned char *t = memchr(p + i, (unsigned char)term, (size_t)(n - i));
        Py_ssize_t stop = t ? t - p : n;
        if (!t && !final) {
            unterminated = 1;
            break;
        }
        long long inside = take_segment(seg, p + i, stop - i, p + n, sep, check_nul);
        failed = inside < 0 ? -1 : finish_segment(sc, seg, line, base + i, base + stop);
        line += inside;
        i = stop + 1;
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (failed == TOO_LARGE) {
        PyErr_SetString(PyExc_OverflowError, "a column passed 2 GB before take(); take rows more often");
        goto done;
    }
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    if (unterminated) {
        PyErr_SetString(PyExc_ValueError, "chunk does not end at a segment terminator");
        goto done;
    }
    sc->st[S_LINE] = line;
    sc->st[S_OFFSET] = base + n;
    result = PyTuple_New(STATE_FIELDS);
    if (!result) goto done;
    for (int k = 0; k < STATE_FIELDS; k++) {
        PyObject *v = PyLong_FromLongLong(sc->st[k]);
        if (!v) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, k, v);
    }
done:
    PyBuffer_Release(&data);
    return result;
}

/* take() -> (pha, pat, dsp, pre, marks): the rows scanned since the last take(), as dicts of
 * Arrow-layout buffers; the scanner starts empty again. */
static PyObject *Scanner_take(Scanner *self, PyObject *unused) {
    Scan *sc = &self->sc;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "scanner is scanning");
        return NULL;
    }
    PyObject *tables = PyTuple_New(TABLES);
    if (!tables) return NULL;
    for (int t = 0; t < TABLES; t++) {
        PyObject *rows = rows_tuple(&sc->rows[t]);
        if (!rows || rows_clear(&sc->rows[t]) < 0) {
            Py_XDECREF(rows);
            Py_DECREF(tables);
            return PyErr_Occurred() ? NULL : PyErr_NoMemory();
        }
        PyTuple_SET_ITEM(tables, t, rows);
    }
    return tables;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS, "Scan one chunk of one file (see the module source)."},
    {"take", (PyCFunction)Scanner_take, METH_NOARGS, "The rows scanned so far, as Arrow-layout buffers."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rxradar.ingest._asap_scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Splits ASAP text into Arrow-layout columns per segment kind.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_asap_scan", NULL, -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__asap_scan(void) {
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&BlockType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0 ||
        PyModule_AddIntConstant(m, "STATE_FIELDS", STATE_FIELDS) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
