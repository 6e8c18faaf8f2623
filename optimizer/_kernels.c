/* Optional compiled loops of the swap pass on small days (`optimizer.kernels` is the Python
 * face; without this module the pure-Python/numpy code runs and decides the same).
 *
 * Each function is the elementwise arithmetic of a numpy or Python-float function of the pass,
 * in the same order on IEEE doubles, so the results are the same to the last bit:
 *   grid(...)           `RouteArrays._grid` (insertion of every booking into every route)
 *   forward_slack(...)  `RouteArrays._forward_slack_small`
 * Build: `python setup.py build_ext --inplace` (pip install builds it; a failed build is not an
 * error: the extension is optional). Compiled with -ffp-contract=off: no fused multiply-adds,
 * which would round differently from numpy.
 *
 * Arguments are buffers (numpy arrays, C-contiguous, of the dtype each comment names); the
 * caller (optimizer/kernels.py) checks shapes and dtypes, this code trusts them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* numpy's maximum: NaN propagates, and of two equal values the first is returned. */
static inline double np_max(double a, double b) { return (a >= b || isnan(a)) ? a : b; }

/* np.searchsorted(keys, q, side="left") */
static inline Py_ssize_t lower_bound(const int64_t *keys, Py_ssize_t len, int64_t q) {
    Py_ssize_t lo = 0, hi = len;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < q)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int check_len(Py_buffer *b, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (b->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd", name, b->len,
                     items * itemsize);
        return -1;
    }
    return 0;
}

/* grid(n, k, key, driver, booking, pickup, dropoff, slack, deadline, order, earliest,
 *      duration, shift_start, shift_end, minutes, km,
 *      own, downstream, empty, push, km_added, fits)
 * Flat route arrays (length m + 1, sentinel last): key, driver, booking int64; pickup,
 * dropoff, slack float64. Per booking (n): deadline, earliest, duration float64, order int64.
 * Per driver (k): shift_start, shift_end float64. minutes, km: (n + k, n) float64.
 * Outputs (n * k, booking-major): float64 except fits (bool). */
static PyObject *grid(PyObject *self, PyObject *args) {
    Py_ssize_t n, k;
    Py_buffer bk[16], out[6];
    PyObject *result = NULL;
    int got = 0, got_out = 0;
    if (!PyArg_ParseTuple(args, "nny*y*y*y*y*y*y*y*y*y*y*y*y*y*w*w*w*w*w*w*", &n, &k, &bk[0],
                          &bk[1], &bk[2], &bk[3], &bk[4], &bk[5], &bk[6], &bk[7], &bk[8],
                          &bk[9], &bk[10], &bk[11], &bk[12], &bk[13], &out[0], &out[1],
                          &out[2], &out[3], &out[4], &out[5]))
        return NULL;
    got = 14;
    got_out = 6;
    Py_ssize_t len = bk[0].len / 8; /* m + 1 */
    Py_ssize_t pairs = n * k;
    if (len < 1 || check_len(&bk[1], len, 8, "driver") || check_len(&bk[2], len, 8, "booking") ||
        check_len(&bk[3], len, 8, "pickup") || check_len(&bk[4], len, 8, "dropoff") ||
        check_len(&bk[5], len, 8, "slack") || check_len(&bk[6], n, 8, "deadline") ||
        check_len(&bk[7], n, 8, "order") || check_len(&bk[8], n, 8, "earliest") ||
        check_len(&bk[9], n, 8, "duration") || check_len(&bk[10], k, 8, "shift_start") ||
        check_len(&bk[11], k, 8, "shift_end") ||
        check_len(&bk[12], (n + k) * n, 8, "minutes") ||
        check_len(&bk[13], (n + k) * n, 8, "km") || check_len(&out[0], pairs, 8, "own") ||
        check_len(&out[1], pairs, 8, "downstream") || check_len(&out[2], pairs, 8, "empty") ||
        check_len(&out[3], pairs, 8, "push") || check_len(&out[4], pairs, 8, "km_added") ||
        check_len(&out[5], pairs, 1, "fits")) {
        if (len < 1 && !PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "empty route arrays");
        goto done;
    }
    {
        const int64_t *key = bk[0].buf, *driver = bk[1].buf, *booking = bk[2].buf;
        const double *pickup = bk[3].buf, *dropoff = bk[4].buf, *slack = bk[5].buf;
        const double *deadline = bk[6].buf;
        const int64_t *order = bk[7].buf;
        const double *earliest = bk[8].buf, *dur = bk[9].buf;
        const double *shift_start = bk[10].buf, *shift_end = bk[11].buf;
        const double *minutes = bk[12].buf, *kmt = bk[13].buf;
        double *o_own = out[0].buf, *o_down = out[1].buf, *o_empty = out[2].buf;
        double *o_push = out[3].buf, *o_km = out[4].buf;
        unsigned char *o_fits = out[5].buf;
        Py_ssize_t last = len - 1;
        for (Py_ssize_t b = 0; b < n; b++) {
            for (Py_ssize_t d = 0; d < k; d++) {
                Py_ssize_t i = b * k + d;
                Py_ssize_t idx = lower_bound(key, len, (int64_t)d * (n + 1) + order[b]);
                Py_ssize_t pred = idx - 1 > 0 ? idx - 1 : 0;
                int pred_ok = idx >= 1 && driver[pred] == d;
                Py_ssize_t succ = idx < last ? idx : last;
                int succ_ok = driver[succ] == d;
                int64_t row = pred_ok ? booking[pred] : (int64_t)(n + d);
                int64_t sb = booking[succ];
                double free_at = pred_ok ? dropoff[pred] : shift_start[d];
                double empty = minutes[row * n + b];
                double pick = np_max(free_at + empty, earliest[b]);
                double own = deadline[b] - pick;
                double drop = pick + dur[b];
                double next_pickup = np_max(drop + minutes[b * n + sb], earliest[sb]);
                double push = np_max(next_pickup - pickup[succ], 0.0);
                double down = succ_ok ? slack[succ] - push : shift_end[d] - drop;
                double into = kmt[row * n + b];
                double away = succ_ok ? kmt[b * n + sb] : 0.0;
                double bridge = succ_ok ? kmt[row * n + sb] : 0.0;
                double push_out = succ_ok ? push : NAN;
                o_own[i] = own;
                o_down[i] = down;
                o_empty[i] = empty;
                o_push[i] = push_out;
                o_km[i] = (into + away) - bridge;
                /* `insertion_grid.fits_mask` */
                o_fits[i] = (own >= -1e-6) && ((push_out <= 1e-6) || (down >= -1e-6));
            }
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int j = 0; j < got; j++)
        PyBuffer_Release(&bk[j]);
    for (int j = 0; j < got_out; j++)
        PyBuffer_Release(&out[j]);
    return result;
}

/* forward_slack(n, k, driver, booking, pickup, dropoff, deadline, shift_end, minutes, out)
 * `_forward_slack_small` over the m flat rides (arrays of length m + 1, sentinel last: driver,
 * booking int64; pickup, dropoff float64); deadline (n), shift_end (k), minutes ((n + k), n)
 * float64; out: m + 1 float64, written for the first m (the caller zeroes the last). */
static PyObject *forward_slack(PyObject *self, PyObject *args) {
    Py_ssize_t n, k;
    Py_buffer bk[7], out;
    PyObject *result = NULL;
    double *waited = NULL, *x = NULL;
    if (!PyArg_ParseTuple(args, "nny*y*y*y*y*y*y*w*", &n, &k, &bk[0], &bk[1], &bk[2], &bk[3],
                          &bk[4], &bk[5], &bk[6], &out))
        return NULL;
    Py_ssize_t len = bk[0].len / 8;
    Py_ssize_t m = len - 1;
    if (len < 1 || check_len(&bk[1], len, 8, "booking") || check_len(&bk[2], len, 8, "pickup") ||
        check_len(&bk[3], len, 8, "dropoff") || check_len(&bk[4], n, 8, "deadline") ||
        check_len(&bk[5], k, 8, "shift_end") || check_len(&bk[6], (n + k) * n, 8, "minutes") ||
        check_len(&out, len, 8, "out")) {
        if (len < 1 && !PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "empty route arrays");
        goto done;
    }
    if (m == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    waited = PyMem_Malloc(sizeof(double) * (size_t)m);
    x = PyMem_Malloc(sizeof(double) * (size_t)m);
    if (waited == NULL || x == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    {
        const int64_t *drivers = bk[0].buf, *bookings = bk[1].buf;
        const double *pickups = bk[2].buf, *dropoffs = bk[3].buf, *deadline = bk[4].buf;
        const double *shift_end = bk[5].buf, *minutes = bk[6].buf;
        double *o = out.buf;
        double total = 0.0;
        for (Py_ssize_t i = 0; i < m; i++) {
            int64_t d = drivers[i], b = bookings[i];
            double own = deadline[b] - pickups[i];
            if (i && drivers[i - 1] == d) {
                double arrive = dropoffs[i - 1] + minutes[bookings[i - 1] * n + b];
                double wait = pickups[i] - arrive;
                total += (0.0 > wait ? 0.0 : wait); /* Python's max(wait, 0.0) */
            } else {
                total += 0.0;
            }
            if (drivers[i + 1] != d) {
                double end = shift_end[d] - dropoffs[i];
                own = end < own ? end : own; /* Python's min(own, end) */
            }
            waited[i] = total;
            x[i] = own + total;
        }
        double top = fabs(x[0]);
        for (Py_ssize_t i = 1; i < m; i++) {
            double v = fabs(x[i]);
            if (v > top)
                top = v;
        }
        double big = 4.0 * (top + 1.0);
        double low = INFINITY;
        for (Py_ssize_t i = m - 1; i >= 0; i--) {
            double v = x[i] + (double)drivers[i] * big;
            low = v < low ? v : low;
            o[i] = (low - (double)drivers[i] * big) - waited[i];
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(waited);
    PyMem_Free(x);
    for (int j = 0; j < 7; j++)
        PyBuffer_Release(&bk[j]);
    PyBuffer_Release(&out);
    return result;
}

/* candidates(n, k, assignment, base, has_wanted, wanted, g_tab, s_tab, fits, swaps, x, y,
 *            solo, gap, sq, out_int, out_sq) -> count
 * `moves.generate`'s moves and swaps (not chains) on a day with an insertion grid: moves in
 * (booking, driver) order where `base` (solo & movable) holds, not to the booking's own
 * driver, the pair wanted (`wanted[src, dst]`, when `has_wanted`) and `fits`; then, when
 * `swaps`, the pairs (x, y) on different drivers each could serve alone. int64: assignment
 * (n), g_tab (k * k), x, y; bool: base, fits, solo (n * k), wanted (k * k); float64: s_tab.
 * out_int: 7 rows of int64 (kind, b1, src, dst, b2, dst2, gap_after) of `cap` each; out_sq:
 * cap float64 (cap >= n * k + len(x)). */
static PyObject *candidates(PyObject *self, PyObject *args) {
    Py_ssize_t n, k, count = 0;
    int has_wanted, swaps;
    long long gap;
    double sq;
    Py_buffer bk[9], o_int, o_sq;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "nny*y*py*y*y*y*py*y*y*Ldw*w*", &n, &k, &bk[0], &bk[1],
                          &has_wanted, &bk[2], &bk[3], &bk[4], &bk[5], &swaps, &bk[6], &bk[7],
                          &bk[8], &gap, &sq, &o_int, &o_sq))
        return NULL;
    Py_ssize_t nk = n * k, pairs = bk[6].len / 8, cap = o_sq.len / 8;
    if (check_len(&bk[0], n, 8, "assignment") || check_len(&bk[1], nk, 1, "base") ||
        (has_wanted && check_len(&bk[2], k * k, 1, "wanted")) ||
        check_len(&bk[3], k * k, 8, "g_tab") || check_len(&bk[4], k * k, 8, "s_tab") ||
        check_len(&bk[5], nk, 1, "fits") || check_len(&bk[7], pairs, 8, "y") ||
        check_len(&bk[8], nk, 1, "solo") || check_len(&o_int, 7 * cap, 8, "out_int")) {
        goto done;
    }
    if (cap < nk + pairs) {
        PyErr_SetString(PyExc_ValueError, "candidates: output too small");
        goto done;
    }
    {
        const int64_t *assignment = bk[0].buf, *g_tab = bk[3].buf;
        const unsigned char *base = bk[1].buf, *wanted = bk[2].buf, *fits = bk[5].buf;
        const unsigned char *solo = bk[8].buf;
        const double *s_tab = bk[4].buf;
        const int64_t *xs = bk[6].buf, *ys = bk[7].buf;
        int64_t *kind = o_int.buf, *b1 = kind + cap, *src = b1 + cap, *dst = src + cap;
        int64_t *b2 = dst + cap, *dst2 = b2 + cap, *gap_after = dst2 + cap;
        double *sq_after = o_sq.buf;
        for (Py_ssize_t b = 0; b < n; b++) {
            int64_t a = assignment[b];
            for (Py_ssize_t d = 0; d < k; d++) {
                Py_ssize_t i = b * k + d;
                if (!base[i] || d == a)
                    continue;
                if (has_wanted && !wanted[a * k + d])
                    continue;
                if (!fits[i])
                    continue;
                kind[count] = 0; /* MOVE */
                b1[count] = b;
                src[count] = a;
                dst[count] = d;
                b2[count] = -1;
                dst2[count] = -1;
                gap_after[count] = g_tab[a * k + d];
                sq_after[count] = s_tab[a * k + d];
                count++;
            }
        }
        if (swaps) {
            for (Py_ssize_t j = 0; j < pairs; j++) {
                int64_t x = xs[j], y = ys[j], ax = assignment[x], ay = assignment[y];
                if (ax == ay || !solo[x * k + ay] || !solo[y * k + ax])
                    continue;
                kind[count] = 1; /* SWAP */
                b1[count] = x;
                src[count] = ax;
                dst[count] = ay;
                b2[count] = y;
                dst2[count] = ax;
                gap_after[count] = gap;
                sq_after[count] = sq;
                count++;
            }
        }
    }
    result = PyLong_FromSsize_t(count);
done:
    for (int j = 0; j < 9; j++)
        PyBuffer_Release(&bk[j]);
    PyBuffer_Release(&o_int);
    PyBuffer_Release(&o_sq);
    return result;
}

/* insert(n, k, key, driver, booking, pickup, dropoff, slack, deadline, order, earliest,
 *        duration, shift_start, shift_end, minutes, km, b, d, skip,
 *        own, downstream, empty, push, km_added)
 * `RouteArrays._insert_parts` and `_km_added` of the rows (b, d, skip): booking b inserted
 * into driver d's route, stepping over `skip` (which leaves it; -1: none; an empty buffer:
 * no skips). The first 16 arguments as for `grid`; b, d, skip int64 of one length;
 * outputs float64 of that length. */
static PyObject *insert(PyObject *self, PyObject *args) {
    Py_ssize_t n, k;
    Py_buffer bk[17], out[5];
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "nny*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*w*w*w*w*w*", &n, &k,
                          &bk[0], &bk[1], &bk[2], &bk[3], &bk[4], &bk[5], &bk[6], &bk[7],
                          &bk[8], &bk[9], &bk[10], &bk[11], &bk[12], &bk[13], &bk[14], &bk[15],
                          &bk[16], &out[0], &out[1], &out[2], &out[3], &out[4]))
        return NULL;
    Py_ssize_t len = bk[0].len / 8, rows = bk[14].len / 8;
    int has_skip = bk[16].len > 0;
    if (len < 1 || check_len(&bk[1], len, 8, "driver") || check_len(&bk[2], len, 8, "booking") ||
        check_len(&bk[3], len, 8, "pickup") || check_len(&bk[4], len, 8, "dropoff") ||
        check_len(&bk[5], len, 8, "slack") || check_len(&bk[6], n, 8, "deadline") ||
        check_len(&bk[7], n, 8, "order") || check_len(&bk[8], n, 8, "earliest") ||
        check_len(&bk[9], n, 8, "duration") || check_len(&bk[10], k, 8, "shift_start") ||
        check_len(&bk[11], k, 8, "shift_end") ||
        check_len(&bk[12], (n + k) * n, 8, "minutes") ||
        check_len(&bk[13], (n + k) * n, 8, "km") || check_len(&bk[15], rows, 8, "d") ||
        (has_skip && check_len(&bk[16], rows, 8, "skip")) ||
        check_len(&out[0], rows, 8, "own") || check_len(&out[1], rows, 8, "downstream") ||
        check_len(&out[2], rows, 8, "empty") || check_len(&out[3], rows, 8, "push") ||
        check_len(&out[4], rows, 8, "km_added")) {
        if (len < 1 && !PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "empty route arrays");
        goto done;
    }
    {
        const int64_t *key = bk[0].buf, *driver = bk[1].buf, *booking = bk[2].buf;
        const double *pickup = bk[3].buf, *dropoff = bk[4].buf, *slack = bk[5].buf;
        const double *deadline = bk[6].buf;
        const int64_t *order = bk[7].buf;
        const double *earliest = bk[8].buf, *dur = bk[9].buf;
        const double *shift_start = bk[10].buf, *shift_end = bk[11].buf;
        const double *minutes = bk[12].buf, *kmt = bk[13].buf;
        const int64_t *bs = bk[14].buf, *ds = bk[15].buf, *skips = bk[16].buf;
        double *o_own = out[0].buf, *o_down = out[1].buf, *o_empty = out[2].buf;
        double *o_push = out[3].buf, *o_km = out[4].buf;
        Py_ssize_t last = len - 1;
        for (Py_ssize_t i = 0; i < rows; i++) {
            int64_t b = bs[i], d = ds[i];
            if (b < 0 || b >= n || d < 0 || d >= k) {
                PyErr_SetString(PyExc_IndexError, "insert: booking or driver out of range");
                goto done;
            }
            /* `neighbours` */
            Py_ssize_t idx = lower_bound(key, len, d * (int64_t)(n + 1) + order[b]);
            Py_ssize_t pred = idx - 1 > 0 ? idx - 1 : 0;
            int pred_ok = idx >= 1 && driver[pred] == d;
            Py_ssize_t succ = idx < last ? idx : last;
            int succ_ok = driver[succ] == d;
            if (has_skip) {
                int64_t skip = skips[i];
                int drop_skip = pred_ok && booking[pred] == skip;
                if (drop_skip)
                    pred = pred - 1 > 0 ? pred - 1 : 0;
                pred_ok = pred_ok && (!drop_skip || (idx - 2 >= 0 && driver[pred] == d));
                drop_skip = succ_ok && booking[succ] == skip;
                if (drop_skip)
                    succ = succ + 1 < last ? succ + 1 : last;
                succ_ok = succ_ok && driver[succ] == d;
            }
            /* `_insert_parts` and `_km_added` */
            int64_t row = pred_ok ? booking[pred] : (int64_t)n + d;
            int64_t sb = booking[succ];
            double free_at = pred_ok ? dropoff[pred] : shift_start[d];
            double empty = minutes[row * n + b];
            double pick = np_max(free_at + empty, earliest[b]);
            double own = deadline[b] - pick;
            double drop = pick + dur[b];
            double next_pickup = np_max(drop + minutes[b * n + sb], earliest[sb]);
            double push = np_max(next_pickup - pickup[succ], 0.0);
            double down = succ_ok ? slack[succ] - push : shift_end[d] - drop;
            double into = kmt[row * n + b];
            double away = succ_ok ? kmt[b * n + sb] : 0.0;
            double bridge = succ_ok ? kmt[row * n + sb] : 0.0;
            o_own[i] = own;
            o_down[i] = down;
            o_empty[i] = empty;
            o_push[i] = succ_ok ? push : NAN;
            o_km[i] = (into + away) - bridge;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int j = 0; j < 17; j++)
        PyBuffer_Release(&bk[j]);
    for (int j = 0; j < 5; j++)
        PyBuffer_Release(&out[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"insert", insert, METH_VARARGS, "RouteArrays._insert_parts' and _km_added's arithmetic."},
    {"candidates", candidates, METH_VARARGS, "moves.generate's moves and swaps."},
    {"grid", grid, METH_VARARGS, "RouteArrays._grid's arithmetic (see the module comment)."},
    {"forward_slack", forward_slack, METH_VARARGS, "RouteArrays._forward_slack_small's."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "optimizer._kernels", "Compiled loops of the swap pass.", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
