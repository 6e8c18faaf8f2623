/* Optional compiled loops of the swap pass on small days (`optimizer.kernels` is the Python
 * face; without this module the pure-Python/numpy code runs and decides the same).
 *
 * Each function is the elementwise arithmetic of a numpy or Python-float function of the pass,
 * in the same order on IEEE doubles, so the results are the same to the last bit:
 *   grid(...)           `RouteArrays._grid` (insertion of every booking into every route)
 *   forward_slack(...)  `RouteArrays._forward_slack_small`
 *   beam(...)           `km_repair._beam` (the km re-plan's beam search)
 *   replan(...)         `km_repair.km_replan` and `km_bound` whole (set-up, beam, choice)
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
#include <stdlib.h>
#include <string.h>

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

/* `_forward_slack_small` over m rides (arrays of m + 1, sentinel last); writes out[0..m-1].
 * waited, x: scratch of m doubles. */
static void slack_loop(Py_ssize_t m, Py_ssize_t n, const int64_t *drivers,
                       const int64_t *bookings, const double *pickups, const double *dropoffs,
                       const double *deadline, const double *shift_end, const double *minutes,
                       double *waited, double *x, double *o) {
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
    slack_loop(m, n, bk[0].buf, bk[1].buf, bk[2].buf, bk[3].buf, bk[4].buf, bk[5].buf,
               bk[6].buf, waited, x, out.buf);
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

/* np.clip of float32 (numpy's loop: max then min, the bound when equal, NaN kept) */
static inline float np_clip(float x, float lo, float hi) {
    float m = isnan(x) ? x : (x > lo ? x : lo);
    return isnan(m) ? m : (m < hi ? m : hi);
}

/* features(plan, kind, src, dst, dst2, b1, b2, gap_after, sq_after, counts, workload, full,
 *          top, bottom, mean, scale, gap, sq, w_mean, static, ins, low, high, out)
 * `dqn.features._features_small`'s rows: the same float64 expressions in the same order,
 * one cast to float32, then `np.clip(out, low, high)`. plan: 6 float64; the candidates'
 * columns (m rows): kind, src, dst, dst2, b1, b2, gap_after int64, sq_after float64; per
 * driver (k): counts, workload float64, full bool; static: (n, 6) float32 (`_booking_features`);
 * ins: 6 rows of m float64 (own, downstream, leg of b1 into its driver, then of b2 into its);
 * low, high: 33 float32; out: (m, 33) float32. */
static PyObject *features(PyObject *self, PyObject *args) {
    double top, bottom, mean, scale, gap, sq, w_mean;
    Py_buffer bk[16], out;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*y*y*dddddddy*y*y*y*w*", &bk[0], &bk[1],
                          &bk[2], &bk[3], &bk[4], &bk[5], &bk[6], &bk[7], &bk[8], &bk[9],
                          &bk[10], &bk[11], &top, &bottom, &mean, &scale, &gap, &sq, &w_mean,
                          &bk[12], &bk[13], &bk[14], &bk[15], &out))
        return NULL;
    const Py_ssize_t cols = 33;
    Py_ssize_t m = bk[1].len / 8, k = bk[9].len / 8, n = bk[12].len / (6 * 4);
    if (check_len(&bk[0], 6, 8, "plan") || check_len(&bk[2], m, 8, "src") ||
        check_len(&bk[3], m, 8, "dst") || check_len(&bk[4], m, 8, "dst2") ||
        check_len(&bk[5], m, 8, "b1") || check_len(&bk[6], m, 8, "b2") ||
        check_len(&bk[7], m, 8, "gap_after") || check_len(&bk[8], m, 8, "sq_after") ||
        check_len(&bk[10], k, 8, "workload") || check_len(&bk[11], k, 1, "full") ||
        check_len(&bk[12], n * 6, 4, "static") || check_len(&bk[13], 6 * m, 8, "ins") ||
        check_len(&bk[14], cols, 4, "low") || check_len(&bk[15], cols, 4, "high") ||
        check_len(&out, m * cols, 4, "out"))
        goto done;
    {
        const double *plan = bk[0].buf;
        const int64_t *kind = bk[1].buf, *src = bk[2].buf, *dst = bk[3].buf, *dst2 = bk[4].buf;
        const int64_t *b1 = bk[5].buf, *b2 = bk[6].buf, *gap_after = bk[7].buf;
        const double *sq_after = bk[8].buf, *counts = bk[9].buf, *workload = bk[10].buf;
        const unsigned char *full = bk[11].buf;
        const float *stat = bk[12].buf, *low = bk[14].buf, *high = bk[15].buf;
        const double *ins = bk[13].buf;
        const double *own1 = ins, *down1 = ins + m, *leg1 = ins + 2 * m;
        const double *own2 = ins + 3 * m, *down2 = ins + 4 * m, *leg2 = ins + 5 * m;
        float *o = out.buf;
        double row[33];
        for (Py_ssize_t i = 0; i < m; i++) {
            int64_t kd = kind[i], a = src[i], b = dst[i];
            int64_t e = kd == 2 ? dst2[i] : b; /* CHAIN: the driver that gains a ride */
            int64_t second = b2[i] > 0 ? b2[i] : 0;
            if (a < 0 || a >= k || b < 0 || b >= k || e < 0 || e >= k || b1[i] < 0 ||
                b1[i] >= n || second >= n) {
                PyErr_SetString(PyExc_IndexError, "features: index out of range");
                goto done;
            }
            double chain = kd == 2 ? 1.0 : 0.0;
            double two = b2[i] >= 0 ? 1.0 : 0.0;
            int c = 0;
            for (int j = 0; j < 6; j++)
                row[c++] = plan[j];
            row[c++] = kd == 0 ? 1.0 : 0.0;
            row[c++] = kd == 1 ? 1.0 : 0.0;
            row[c++] = chain;
            row[c++] = gap - (double)gap_after[i];
            row[c++] = (sq - sq_after[i]) / 10.0;
            row[c++] = (counts[a] - mean) / scale;
            row[c++] = (counts[b] - mean) / scale;
            row[c++] = chain * (counts[e] - mean) / scale;
            row[c++] = counts[a] == top ? 1.0 : 0.0;
            row[c++] = counts[e] == bottom ? 1.0 : 0.0;
            row[c++] = (kd != 1 && full[e]) ? 1.0 : 0.0;
            row[c++] = (workload[a] - w_mean) / 120.0;
            row[c++] = (workload[b] - w_mean) / 120.0;
            for (int j = 0; j < 6; j++)
                row[c++] = (double)stat[b1[i] * 6 + j];
            row[c++] = own1[i] / 60.0;
            row[c++] = down1[i] / 60.0;
            row[c++] = leg1[i] / 30.0;
            row[c++] = two;
            row[c++] = two * (double)stat[second * 6 + 5];
            row[c++] = two * (own2[i] / 60.0);
            row[c++] = two * (down2[i] / 60.0);
            row[c++] = two * (leg2[i] / 30.0);
            for (int j = 0; j < 33; j++)
                o[i * cols + j] = np_clip((float)row[j], low[j], high[j]);
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int j = 0; j < 16; j++)
        PyBuffer_Release(&bk[j]);
    PyBuffer_Release(&out);
    return result;
}

/* `ride_model._pairwise` (numpy's pairwise summation of float64) */
static double pairwise(const double *a, Py_ssize_t n) {
    if (n < 8) {
        double res = 0.0;
        for (Py_ssize_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        Py_ssize_t i = 8, end = n - n % 8;
        for (; i < end; i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    Py_ssize_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

/* `ride_model.pairwise_sum` */
static double pairwise_sum(const double *a, Py_ssize_t n) { return pairwise(a, n) + 0.0; }

/* schedule(driver, bookings, shift_start, n, k, earliest, latest, duration, window_limit, capable, minutes,
 *          km) -> (pickups, dropoffs, workload, deadhead, lateness, incapable, too_late)
 * `feasibility.schedule_route`'s numbers: `ride_model.ride_by_ride` on doubles, the
 * pairwise sums, and which bookings break `capable` or their window (`window_limit`) as
 * tuples. bookings: a sequence of ints in service order; per booking (n) float64: earliest,
 * latest, duration, window_limit; capable: (n, k) bool; minutes, km: (n + k, n) float64. */
static PyObject *schedule(PyObject *self, PyObject *args) {
    Py_ssize_t driver, n, k;
    double shift_start;
    PyObject *seq_in, *seq = NULL, *result = NULL;
    Py_buffer bk[7];
    double *buf = NULL;
    Py_ssize_t *bs = NULL;
    if (!PyArg_ParseTuple(args, "nOdnny*y*y*y*y*y*y*", &driver, &seq_in, &shift_start, &n, &k,
                          &bk[0], &bk[1],
                          &bk[2], &bk[3], &bk[4], &bk[5], &bk[6]))
        return NULL;
    if (check_len(&bk[0], n, 8, "earliest") || check_len(&bk[1], n, 8, "latest") ||
        check_len(&bk[2], n, 8, "duration") || check_len(&bk[3], n, 8, "window_limit") ||
        check_len(&bk[4], n * k, 1, "capable") || check_len(&bk[5], (n + k) * n, 8, "minutes") ||
        check_len(&bk[6], (n + k) * n, 8, "km"))
        goto done;
    if (driver < 0 || driver >= k) {
        PyErr_SetString(PyExc_IndexError, "schedule: driver out of range");
        goto done;
    }
    seq = PySequence_Fast(seq_in, "schedule: bookings must be a sequence");
    if (seq == NULL)
        goto done;
    {
        Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
        PyObject **items = PySequence_Fast_ITEMS(seq);
        const double *earliest = bk[0].buf, *latest = bk[1].buf, *dur = bk[2].buf;
        const double *limit = bk[3].buf, *minutes = bk[5].buf, *kmt = bk[6].buf;
        const unsigned char *capable = bk[4].buf;
        buf = PyMem_Malloc(sizeof(double) * (size_t)(6 * m + 1));
        bs = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(m + 1));
        if (buf == NULL || bs == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        double *pick = buf, *drop = buf + m, *legm = buf + 2 * m, *legk = buf + 3 * m;
        double *late = buf + 4 * m, *durs = buf + 5 * m;
        Py_ssize_t n_incap = 0, n_late = 0;
        for (Py_ssize_t i = 0; i < m; i++) {
            Py_ssize_t b = PyNumber_AsSsize_t(items[i], PyExc_IndexError);
            if (b == -1 && PyErr_Occurred())
                goto done;
            if (b < 0 || b >= n) {
                PyErr_SetString(PyExc_IndexError, "schedule: booking out of range");
                goto done;
            }
            bs[i] = b;
        }
        double free_at = shift_start;
        Py_ssize_t prev = -1;
        for (Py_ssize_t i = 0; i < m; i++) {
            Py_ssize_t b = bs[i];
            Py_ssize_t row = prev < 0 ? n + driver : prev;
            double lg = minutes[row * n + b];
            legm[i] = lg;
            legk[i] = kmt[row * n + b];
            double arrive = free_at + lg;
            double p = earliest[b] > arrive ? earliest[b] : arrive; /* Python's max(arrive, e) */
            pick[i] = p;
            free_at = drop[i] = p + dur[b];
            prev = b;
            double over = p - latest[b];
            late[i] = 0.0 > over ? 0.0 : over; /* Python's max(over, 0.0) */
            durs[i] = dur[b];
            if (!capable[b * k + driver])
                n_incap++;
            if (p > limit[b])
                n_late++;
        }
        PyObject *t_pick = PyTuple_New(m), *t_drop = PyTuple_New(m);
        PyObject *t_incap = PyTuple_New(n_incap), *t_late = PyTuple_New(n_late);
        if (t_pick == NULL || t_drop == NULL || t_incap == NULL || t_late == NULL) {
            Py_XDECREF(t_pick);
            Py_XDECREF(t_drop);
            Py_XDECREF(t_incap);
            Py_XDECREF(t_late);
            goto done;
        }
        Py_ssize_t ji = 0, jl = 0;
        int failed = 0;
        for (Py_ssize_t i = 0; i < m; i++) {
            PyObject *a = PyFloat_FromDouble(pick[i]), *b = PyFloat_FromDouble(drop[i]);
            if (a == NULL || b == NULL) {
                Py_XDECREF(a);
                Py_XDECREF(b);
                failed = 1;
                break;
            }
            PyTuple_SET_ITEM(t_pick, i, a);
            PyTuple_SET_ITEM(t_drop, i, b);
            if (!capable[bs[i] * k + driver]) {
                Py_INCREF(items[i]);
                PyTuple_SET_ITEM(t_incap, ji++, items[i]);
            }
            if (pick[i] > limit[bs[i]]) {
                Py_INCREF(items[i]);
                PyTuple_SET_ITEM(t_late, jl++, items[i]);
            }
        }
        if (failed) {
            Py_DECREF(t_pick);
            Py_DECREF(t_drop);
            Py_DECREF(t_incap);
            Py_DECREF(t_late);
            goto done;
        }
        double workload = pairwise_sum(legm, m) + pairwise_sum(durs, m);
        result = Py_BuildValue("(NNdddNN)", t_pick, t_drop, workload, pairwise_sum(legk, m),
                               pairwise_sum(late, m), t_incap, t_late);
    }
done:
    Py_XDECREF(seq);
    PyMem_Free(buf);
    PyMem_Free(bs);
    for (int j = 0; j < 7; j++)
        PyBuffer_Release(&bk[j]);
    return result;
}

/* flatten(scheds, n, order, deadline, shift_end, minutes, with_slack, ints, floats, position)
 * `RouteArrays.__init__`'s flat arrays from the schedules (driver d = index in `scheds`; each
 * has tuples `bookings`, `pickup_at`, `dropoff_at`): ints rows driver, booking, key and
 * floats rows pickup, dropoff, slack, each of total + 1 (sentinel last: driver len(scheds),
 * booking 0, times 0, key len(scheds) * (n + 1), slack 0); position (n): each booking's flat
 * index, total for the unassigned. The slack only when `with_slack` (`_forward_slack_small`).
 * order int64 (n); deadline float64 (n), shift_end float64 (>= len(scheds)); minutes as for
 * `grid`. */
static PyObject *flatten(PyObject *self, PyObject *args) {
    PyObject *scheds_in, *scheds = NULL, *result = NULL;
    Py_ssize_t n;
    int with_slack;
    Py_buffer bk[4], out[3];
    double *scratch = NULL;
    if (!PyArg_ParseTuple(args, "Ony*y*y*y*pw*w*w*", &scheds_in, &n, &bk[0], &bk[1], &bk[2],
                          &bk[3], &with_slack, &out[0], &out[1], &out[2]))
        return NULL;
    scheds = PySequence_Fast(scheds_in, "flatten: schedules must be a sequence");
    if (scheds == NULL)
        goto done;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(scheds), len = out[0].len / (3 * 8);
    Py_ssize_t total = len - 1;
    if (len < 1 || out[0].len != 3 * 8 * len || check_len(&out[1], 3 * len, 8, "floats") ||
        check_len(&out[2], n, 8, "position") || check_len(&bk[0], n, 8, "order") ||
        check_len(&bk[1], n, 8, "deadline") || bk[2].len < k * 8 ||
        check_len(&bk[3], (n + bk[2].len / 8) * n, 8, "minutes")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "flatten: bad sizes");
        goto done;
    }
    {
        const int64_t *order = bk[0].buf;
        int64_t *driver = out[0].buf, *booking = driver + len, *key = booking + len;
        double *pickup = out[1].buf, *dropoff = pickup + len, *slack = dropoff + len;
        int64_t *position = out[2].buf;
        PyObject **items = PySequence_Fast_ITEMS(scheds);
        for (Py_ssize_t b = 0; b < n; b++)
            position[b] = total;
        Py_ssize_t at = 0;
        static const char *names[3] = {"bookings", "pickup_at", "dropoff_at"};
        for (Py_ssize_t d = 0; d < k; d++) {
            PyObject *cols[3] = {NULL, NULL, NULL};
            int bad = 0;
            Py_ssize_t m = 0;
            for (int c = 0; c < 3 && !bad; c++) {
                PyObject *attr = PyObject_GetAttrString(items[d], names[c]);
                if (attr == NULL) {
                    bad = 1;
                    break;
                }
                cols[c] = PySequence_Fast(attr, "flatten: a schedule column is not a sequence");
                Py_DECREF(attr);
                if (cols[c] == NULL)
                    bad = 1;
                else if (c == 0)
                    m = PySequence_Fast_GET_SIZE(cols[c]);
                else if (PySequence_Fast_GET_SIZE(cols[c]) != m) {
                    PyErr_SetString(PyExc_ValueError, "flatten: ragged schedule");
                    bad = 1;
                }
            }
            if (!bad && at + m > total) {
                PyErr_SetString(PyExc_ValueError, "flatten: more rides than the arrays hold");
                bad = 1;
            }
            for (Py_ssize_t i = 0; i < m && !bad; i++) {
                Py_ssize_t b = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(cols[0], i),
                                                  PyExc_IndexError);
                double pk = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(cols[1], i));
                double dr = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(cols[2], i));
                if (PyErr_Occurred()) {
                    bad = 1;
                    break;
                }
                if (b < 0 || b >= n) {
                    PyErr_SetString(PyExc_IndexError, "flatten: booking out of range");
                    bad = 1;
                    break;
                }
                driver[at] = d;
                booking[at] = b;
                key[at] = (int64_t)d * (n + 1) + order[b];
                pickup[at] = pk;
                dropoff[at] = dr;
                position[b] = at;
                at++;
            }
            for (int c = 0; c < 3; c++)
                Py_XDECREF(cols[c]);
            if (bad)
                goto done;
        }
        if (at != total) {
            PyErr_SetString(PyExc_ValueError, "flatten: fewer rides than the arrays hold");
            goto done;
        }
        driver[total] = k;
        booking[total] = 0;
        key[total] = (int64_t)k * (n + 1);
        pickup[total] = 0.0;
        dropoff[total] = 0.0;
        for (Py_ssize_t i = 0; i <= total; i++)
            slack[i] = 0.0;
        if (with_slack && total > 0) {
            scratch = PyMem_Malloc(sizeof(double) * (size_t)(2 * total));
            if (scratch == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            slack_loop(total, n, driver, booking, pickup, dropoff, bk[1].buf, bk[2].buf,
                       bk[3].buf, scratch, scratch + total, slack);
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(scheds);
    PyMem_Free(scratch);
    for (int j = 0; j < 4; j++)
        PyBuffer_Release(&bk[j]);
    for (int j = 0; j < 3; j++)
        PyBuffer_Release(&out[j]);
    return result;
}

/* beam(n, kk, width, km_w, late_w, ceiling, c_lo, c_hi, leg_min, leg_km, earliest, latest,
 *      deadline, duration, shift_start, shift_end, cap, allowed, now, rest,
 *      parents, chosen, rows, out_cnt, out_work, out_cost) -> (kept, inc, effort)
 * `km_repair.km_replan`'s beam, ride by ride (see there): every partial plan x every driver,
 * the same feasibility tests and sums in the same order, the same pruning, and the same
 * `_best_per_key` choice (candidates sorted by cost, ties in candidate order as numpy's
 * stable argsort; the first of each (last rides + 1, counts) key; the `width` cheapest; today's
 * plan pinned). leg_min, leg_km: (n + kk, n) float64; earliest, latest, deadline (with its
 * epsilon), duration: n float64; shift_start, shift_end (with epsilon): kk float64; cap: kk
 * int64; allowed: n * kk bool; now: n int64; rest: n + 1 float64. Outputs: parents, chosen:
 * n * width int64 (row i holds rows[i] entries); rows: n int64; out_cnt: width * kk int64,
 * out_work: width * kk float64, out_cost: width float64 (the final partial plans). kept is -1
 * when today's plan fell out of the model (it should not). */
/* The beam's candidates by cost, ties by index (numpy's stable argsort of the costs). */
typedef struct {
    double cost;
    Py_ssize_t idx;
} CostIdx;

static inline int cost_before(CostIdx a, CostIdx b) {
    if (a.cost < b.cost)
        return 1;
    if (a.cost > b.cost)
        return 0;
    return a.idx < b.idx;
}

static void sift_down(CostIdx *h, Py_ssize_t len, Py_ssize_t at) {
    CostIdx x = h[at];
    for (;;) {
        Py_ssize_t c = 2 * at + 1;
        if (c >= len)
            break;
        if (c + 1 < len && cost_before(h[c + 1], h[c]))
            c++;
        if (!cost_before(h[c], x))
            break;
        h[at] = h[c];
        at = c;
    }
    h[at] = x;
}

/* A candidate of the beam: partial plan `par` with the next ride given to driver `dch`. Its
 * (last rides, counts) key is its parent's with entry `dch` changed: compared and hashed
 * without being copied (only kept candidates become rows). */
typedef struct {
    const int64_t *last, *cnt; /* the parents' rows */
    const int64_t *par, *dch;
    Py_ssize_t kk, ride;
} BeamKeys;

static inline int64_t key_last(const BeamKeys *b, Py_ssize_t c, Py_ssize_t j) {
    return j == b->dch[c] ? (int64_t)b->ride : b->last[b->par[c] * b->kk + j];
}

static inline int64_t key_cnt(const BeamKeys *b, Py_ssize_t c, Py_ssize_t j) {
    return b->cnt[b->par[c] * b->kk + j] + (j == b->dch[c]);
}

static uint64_t key_hash(const BeamKeys *b, Py_ssize_t c) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t j = 0; j < b->kk; j++)
        h = (h ^ (uint64_t)key_last(b, c, j)) * 1099511628211ULL;
    for (Py_ssize_t j = 0; j < b->kk; j++)
        h = (h ^ (uint64_t)key_cnt(b, c, j)) * 1099511628211ULL;
    return h;
}

static int key_equal(const BeamKeys *b, Py_ssize_t x, Py_ssize_t y) {
    for (Py_ssize_t j = 0; j < b->kk; j++)
        if (key_last(b, x, j) != key_last(b, y, j) || key_cnt(b, x, j) != key_cnt(b, y, j))
            return 0;
    return 1;
}

/* The beam's loop on raw arrays (see `beam` below); 0, or -1 when out of memory. The same
 * candidates, tests, sums and choices as the numpy beam; a candidate is a parent row and a
 * driver until it is kept (the pruning tests read the parent's largest count and shortfall). */
static int beam_core(Py_ssize_t n, Py_ssize_t kk, Py_ssize_t width, double km_w, double late_w,
                     double ceiling, Py_ssize_t c_lo, Py_ssize_t c_hi, const double *leg_min,
                     const double *leg_km, const double *earliest, const double *latest,
                     const double *deadline, const double *dur, const double *shift_start,
                     const double *shift_end, const int64_t *cap, const uint8_t *allowed,
                     const int64_t *now, const double *rest, int64_t *parents, int64_t *chosen,
                     int64_t *rows_out, int64_t *out_cnt, double *out_work, double *out_cost,
                     Py_ssize_t *kept_out, Py_ssize_t *inc_out, Py_ssize_t *effort_out) {
    int status = -1;
    Py_ssize_t cmax = width * kk, tsize = 1, rk = width * kk;
    while (tsize < 2 * cmax)
        tsize <<= 1;
    int64_t *ibuf = PyMem_Malloc(sizeof(int64_t) * (size_t)(4 * rk + 2 * width + 2 * cmax + tsize));
    double *dbuf = PyMem_Malloc(sizeof(double) * (size_t)(4 * rk + 2 * width + 3 * cmax));
    Py_ssize_t *keep = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)cmax);
    CostIdx *heap = PyMem_Malloc(sizeof(CostIdx) * (size_t)cmax);
    if (!ibuf || !dbuf || !keep || !heap)
        goto done;
    int64_t *last = ibuf, *cnt = ibuf + rk, *n_last = ibuf + 2 * rk, *n_cnt = ibuf + 3 * rk;
    int64_t *pmax = ibuf + 4 * rk, *pshort = pmax + width, *c_par = pshort + width;
    int64_t *c_dch = c_par + cmax, *table = c_dch + cmax;
    double *fre = dbuf, *work = dbuf + rk, *n_fre = dbuf + 2 * rk, *n_work = dbuf + 3 * rk;
    double *cost = dbuf + 4 * rk, *n_cost = cost + width, *c_cost = n_cost + width;
    double *c_pick = c_cost + cmax, *c_min = c_pick + cmax;
    status = 0;
    Py_ssize_t nrows = 1, inc = 0, effort = 0;
    for (Py_ssize_t j = 0; j < kk; j++) {
        last[j] = n + j;
        fre[j] = shift_start[j];
        cnt[j] = 0;
        work[j] = 0.0;
    }
    cost[0] = 0.0;
    pmax[0] = 0;
    pshort[0] = kk * (c_lo > 0 ? c_lo : 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t nc = 0, hit = -1;
        for (Py_ssize_t r = 0; r < nrows; r++) {
            for (Py_ssize_t j = 0; j < kk; j++) {
                Py_ssize_t at = r * kk + j;
                double minutes = leg_min[last[at] * n + i];
                double pick = np_max(fre[at] + minutes, earliest[i]);
                if (!((pick <= deadline[i]) && (pick + dur[i] <= shift_end[j]) &&
                      (cnt[at] < cap[j]) && allowed[i * kk + j]))
                    continue;
                if (r == inc && j == now[i] && hit < 0)
                    hit = nc;
                double km = leg_km[last[at] * n + i];
                c_cost[nc] = cost[r] + km_w * km + late_w * np_max(pick - latest[i], 0.0);
                c_pick[nc] = pick;
                c_min[nc] = minutes;
                c_par[nc] = r;
                c_dch[nc] = j;
                nc++;
            }
        }
        effort += nc;
        if (hit < 0) {
            *kept_out = -1;
            *inc_out = 0;
            *effort_out = effort;
            goto done;
        }
        Py_ssize_t left = n - i - 1, nk = 0;
        for (Py_ssize_t c = 0; c < nc; c++) {
            Py_ssize_t at = c_par[c] * kk + c_dch[c];
            int64_t top = cnt[at] + 1 > pmax[c_par[c]] ? cnt[at] + 1 : pmax[c_par[c]];
            int64_t short_of = pshort[c_par[c]] - (cnt[at] < c_lo);
            int ok = (top <= c_hi) && (short_of <= left) && (c_cost[c] + rest[i + 1] <= ceiling);
            if (ok || c == hit)
                keep[nk++] = c;
        }
        Py_ssize_t npick = nk;
        if (nk > width) { /* `_best_per_key` */
            BeamKeys keys = {last, cnt, c_par, c_dch, kk, i};
            /* The candidates cheapest first (ties by index, as a stable argsort), taken
             * from a binary heap one by one until `width` distinct keys are in: the same
             * order as a full sort, at a fraction of its comparisons. */
            for (Py_ssize_t t = 0; t < nk; t++) {
                heap[t].cost = c_cost[keep[t]];
                heap[t].idx = keep[t];
            }
            for (Py_ssize_t t = nk / 2 - 1; t >= 0; t--)
                sift_down(heap, nk, t);
            Py_ssize_t hn = nk;
            for (Py_ssize_t t = 0; t < tsize; t++)
                table[t] = -1;
            npick = 0;
            int pinned = 0;
            while (hn > 0 && npick < width) {
                Py_ssize_t c = heap[0].idx;
                heap[0] = heap[--hn];
                sift_down(heap, hn, 0);
                uint64_t h = key_hash(&keys, c) & (uint64_t)(tsize - 1);
                int seen = 0;
                while (table[h] >= 0) {
                    if (key_equal(&keys, (Py_ssize_t)table[h], c)) {
                        seen = 1;
                        break;
                    }
                    h = (h + 1) & (uint64_t)(tsize - 1);
                }
                if (seen)
                    continue;
                table[h] = c;
                keep[npick++] = c;
                if (c == hit)
                    pinned = 1;
            }
            if (!pinned) {
                if (npick >= width)
                    npick = width - 1;
                keep[npick++] = hit;
            }
        }
        inc = -1;
        for (Py_ssize_t t = 0; t < npick; t++) {
            Py_ssize_t c = keep[t], r = (Py_ssize_t)c_par[c], j = (Py_ssize_t)c_dch[c];
            if (c == hit && inc < 0)
                inc = t;
            int64_t *nl = n_last + t * kk, *nn = n_cnt + t * kk;
            double *nf = n_fre + t * kk, *nw = n_work + t * kk;
            memcpy(nl, last + r * kk, sizeof(int64_t) * (size_t)kk);
            memcpy(nn, cnt + r * kk, sizeof(int64_t) * (size_t)kk);
            memcpy(nf, fre + r * kk, sizeof(double) * (size_t)kk);
            memcpy(nw, work + r * kk, sizeof(double) * (size_t)kk);
            nl[j] = i;
            nf[j] = c_pick[c] + dur[i];
            nn[j] += 1;
            nw[j] = nw[j] + (c_min[c] + dur[i]);
            n_cost[t] = c_cost[c];
            parents[i * width + t] = r;
            chosen[i * width + t] = j;
        }
        for (Py_ssize_t t = 0; t < npick; t++) { /* the new rows' largest count, shortfall */
            const int64_t *nn = n_cnt + t * kk;
            int64_t top = nn[0], short_of = 0;
            for (Py_ssize_t j = 0; j < kk; j++) {
                if (nn[j] > top)
                    top = nn[j];
                if (c_lo - nn[j] > 0)
                    short_of += c_lo - nn[j];
            }
            pmax[t] = top;
            pshort[t] = short_of;
        }
        int64_t *ti;
        double *td;
        ti = last, last = n_last, n_last = ti;
        ti = cnt, cnt = n_cnt, n_cnt = ti;
        td = fre, fre = n_fre, n_fre = td;
        td = work, work = n_work, n_work = td;
        td = cost, cost = n_cost, n_cost = td;
        rows_out[i] = npick;
        nrows = npick;
    }
    memcpy(out_cnt, cnt, sizeof(int64_t) * (size_t)(nrows * kk));
    memcpy(out_work, work, sizeof(double) * (size_t)(nrows * kk));
    memcpy(out_cost, cost, sizeof(double) * (size_t)nrows);
    *kept_out = nrows;
    *inc_out = inc;
    *effort_out = effort;
done:
    PyMem_Free(ibuf);
    PyMem_Free(dbuf);
    PyMem_Free(keep);
    PyMem_Free(heap);
    return status;
}

static PyObject *beam(PyObject *self, PyObject *args) {
    Py_ssize_t n, kk, width, c_lo, c_hi;
    double km_w, late_w, ceiling;
    Py_buffer bk[12], out[6];
    PyObject *result = NULL;
    memset(bk, 0, sizeof(bk));
    memset(out, 0, sizeof(out));
    if (!PyArg_ParseTuple(args, "nnndddnny*y*y*y*y*y*y*y*y*y*y*y*w*w*w*w*w*w*", &n, &kk,
                          &width, &km_w, &late_w, &ceiling, &c_lo, &c_hi, &bk[0], &bk[1],
                          &bk[2], &bk[3], &bk[4], &bk[5], &bk[6], &bk[7], &bk[8], &bk[9],
                          &bk[10], &bk[11], &out[0], &out[1], &out[2], &out[3],
                          &out[4], &out[5]))
        return NULL;
    if (n < 1 || kk < 1 || width < 1 || check_len(&bk[0], (n + kk) * n, 8, "leg_min") ||
        check_len(&bk[1], (n + kk) * n, 8, "leg_km") || check_len(&bk[2], n, 8, "earliest") ||
        check_len(&bk[3], n, 8, "latest") || check_len(&bk[4], n, 8, "deadline") ||
        check_len(&bk[5], n, 8, "duration") || check_len(&bk[6], kk, 8, "shift_start") ||
        check_len(&bk[7], kk, 8, "shift_end") || check_len(&bk[8], kk, 8, "cap") ||
        check_len(&bk[9], n * kk, 1, "allowed") || check_len(&bk[10], n, 8, "now") ||
        check_len(&bk[11], n + 1, 8, "rest") || check_len(&out[0], n * width, 8, "parents") ||
        check_len(&out[1], n * width, 8, "chosen") || check_len(&out[2], n, 8, "rows") ||
        check_len(&out[3], width * kk, 8, "out_cnt") ||
        check_len(&out[4], width * kk, 8, "out_work") ||
        check_len(&out[5], width, 8, "out_cost")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "beam: empty sizes");
        goto done;
    }
    Py_ssize_t kept, inc, effort;
    if (beam_core(n, kk, width, km_w, late_w, ceiling, c_lo, c_hi, bk[0].buf, bk[1].buf,
                  bk[2].buf, bk[3].buf, bk[4].buf, bk[5].buf, bk[6].buf, bk[7].buf, bk[8].buf,
                  bk[9].buf, bk[10].buf, bk[11].buf, out[0].buf, out[1].buf, out[2].buf,
                  out[3].buf, out[4].buf, out[5].buf, &kept, &inc, &effort) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_BuildValue("nnn", kept, inc, effort);
done:
    for (int j = 0; j < 12; j++)
        if (bk[j].obj != NULL)
            PyBuffer_Release(&bk[j]);
    for (int j = 0; j < 6; j++)
        if (out[j].obj != NULL)
            PyBuffer_Release(&out[j]);
    return result;
}

/* replan(mode, kk, width, km_w, late_w, spread_w, band, min_saving, worse, gap, drivers,
 *        by_order, assignment, locked, solo, earliest, latest, duration, deadline, drop_min,
 *        drop_km, start_min, start_km, shift_start, shift_end, max_rides, overran, counts,
 *        workload, deadhead, lateness)
 * mode 0: `km_repair.km_bound`'s float; mode 1: `km_repair.km_replan`'s decision as
 * (effort, steps or None), steps a tuple of (booking, from driver, to driver) in service order.
 * The whole re-plan on the problem's own arrays: the subset's rides in service order, the
 * allowed pairs, `_least_incoming`, the beam (`beam_core`) and the choice among its last plans,
 * each sum in numpy's order. drivers: kk int64 (the subset, as the caller orders it); by_order:
 * N int64 (bookings by service rank); assignment: N int64; locked: N bool; solo: N * K bool;
 * earliest, latest, duration, deadline: N float64; drop_min, drop_km: N * N float64;
 * start_min, start_km: K * N float64; shift_start, shift_end: K float64; max_rides: K int64;
 * overran: kk bool (the input already broke that driver's shift); counts: K int64; workload,
 * deadhead, lateness: K float64. */
static PyObject *replan(PyObject *self, PyObject *args) {
    int mode;
    Py_ssize_t kk, width, gap;
    double km_w, late_w, spread_w, band, min_saving, worse;
    Py_buffer bk[21];
    PyObject *result = NULL;
    Py_ssize_t *inside = NULL;
    int64_t *rides = NULL, *now = NULL, *cap = NULL, *cnow = NULL, *parents = NULL;
    int64_t *chosen = NULL, *rows = NULL, *out_cnt = NULL, *plan = NULL;
    uint8_t *allowed = NULL;
    double *least = NULL, *rest = NULL, *e = NULL, *l = NULL, *dl = NULL, *du = NULL;
    double *leg_min = NULL, *leg_km = NULL, *st = NULL, *sh_end = NULL, *out_work = NULL;
    double *out_cost = NULL, *total = NULL, *tmp = NULL;
    memset(bk, 0, sizeof(bk));
    if (!PyArg_ParseTuple(args, "innddddddny*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*", &mode,
                          &kk, &width, &km_w, &late_w, &spread_w, &band, &min_saving, &worse,
                          &gap, &bk[0], &bk[1], &bk[2], &bk[3], &bk[4], &bk[5], &bk[6], &bk[7],
                          &bk[8], &bk[9], &bk[10], &bk[11], &bk[12], &bk[13], &bk[14], &bk[15],
                          &bk[16], &bk[17], &bk[18], &bk[19], &bk[20]))
        return NULL;
    Py_ssize_t N = bk[1].len / 8, K = bk[13].len / 8;
    if (N < 1 || K < 1 || kk < 1 || kk > K || width < 1 || check_len(&bk[0], kk, 8, "drivers") ||
        check_len(&bk[2], N, 8, "assignment") || check_len(&bk[3], N, 1, "locked") ||
        check_len(&bk[4], N * K, 1, "solo") || check_len(&bk[5], N, 8, "earliest") ||
        check_len(&bk[6], N, 8, "latest") || check_len(&bk[7], N, 8, "duration") ||
        check_len(&bk[8], N, 8, "deadline") || check_len(&bk[9], N * N, 8, "drop_min") ||
        check_len(&bk[10], N * N, 8, "drop_km") || check_len(&bk[11], K * N, 8, "start_min") ||
        check_len(&bk[12], K * N, 8, "start_km") || check_len(&bk[14], K, 8, "shift_end") ||
        check_len(&bk[15], K, 8, "max_rides") || check_len(&bk[16], kk, 1, "overran") ||
        check_len(&bk[17], K, 8, "counts") || check_len(&bk[18], K, 8, "workload") ||
        check_len(&bk[19], K, 8, "deadhead") || check_len(&bk[20], K, 8, "lateness")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "replan: bad sizes");
        goto done;
    }
    const int64_t *ds = bk[0].buf, *by_order = bk[1].buf, *assign = bk[2].buf;
    const uint8_t *locked = bk[3].buf, *solo = bk[4].buf, *overran = bk[16].buf;
    const double *E = bk[5].buf, *L = bk[6].buf, *D = bk[7].buf, *DL = bk[8].buf;
    const double *dmin = bk[9].buf, *dkm = bk[10].buf, *smin = bk[11].buf, *skm = bk[12].buf;
    const double *sstart = bk[13].buf, *send = bk[14].buf;
    const int64_t *maxr = bk[15].buf, *counts = bk[17].buf;
    const double *wl = bk[18].buf, *dh = bk[19].buf, *lt = bk[20].buf;
    const double eps = 1e-6;
    inside = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)K);
    rides = PyMem_Malloc(sizeof(int64_t) * (size_t)N);
    now = PyMem_Malloc(sizeof(int64_t) * (size_t)N);
    if (!inside || !rides || !now) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t d = 0; d < K; d++)
        inside[d] = -1;
    for (Py_ssize_t k = 0; k < kk; k++) {
        if (ds[k] < 0 || ds[k] >= K || inside[ds[k]] >= 0) {
            PyErr_SetString(PyExc_ValueError, "replan: bad drivers");
            goto done;
        }
        inside[ds[k]] = k;
    }
    Py_ssize_t n = 0;
    for (Py_ssize_t t = 0; t < N; t++) {
        int64_t b = by_order[t];
        if (b < 0 || b >= N) {
            PyErr_SetString(PyExc_ValueError, "replan: bad by_order");
            goto done;
        }
        int64_t a = assign[b];
        if (a >= 0 && a < K && inside[a] >= 0) {
            rides[n] = b;
            now[n] = inside[a];
            n++;
        }
    }
    if (n < 2) {
        result = mode == 0 ? PyFloat_FromDouble(0.0) : Py_BuildValue("nO", (Py_ssize_t)0, Py_None);
        goto done;
    }
    allowed = PyMem_Malloc((size_t)(n * kk));
    least = PyMem_Malloc(sizeof(double) * (size_t)n);
    tmp = PyMem_Malloc(sizeof(double) * (size_t)(n > kk ? n : kk));
    if (!allowed || !least || !tmp) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_allowed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        for (Py_ssize_t k = 0; k < kk; k++)
            allowed[i * kk + k] = solo[rides[i] * K + ds[k]] && !locked[rides[i]];
        allowed[i * kk + now[i]] = 1;
        for (Py_ssize_t k = 0; k < kk; k++)
            n_allowed += allowed[i * kk + k];
    }
    if (mode == 1 && n_allowed == n) {
        result = Py_BuildValue("nO", (Py_ssize_t)0, Py_None);
        goto done;
    }
    /* `_least_incoming` */
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t rj = rides[j];
        double best = INFINITY, lim = DL[rj] + eps;
        for (Py_ssize_t k = 0; k < kk; k++)
            if (allowed[j * kk + k] && skm[ds[k] * N + rj] < best)
                best = skm[ds[k] * N + rj];
        for (Py_ssize_t i = 0; i < j; i++) {
            int64_t ri = rides[i];
            int shared = 0;
            for (Py_ssize_t k = 0; k < kk && !shared; k++)
                shared = allowed[i * kk + k] && allowed[j * kk + k];
            if (shared && (E[ri] + D[ri]) + dmin[ri * N + rj] <= lim && dkm[ri * N + rj] < best)
                best = dkm[ri * N + rj];
        }
        least[j] = best;
    }
    if (mode == 0) { /* `km_bound` */
        double today = 0.0, late = 0.0;
        for (Py_ssize_t k = 0; k < kk; k++)
            today += dh[ds[k]];
        for (Py_ssize_t k = 0; k < kk; k++)
            late += lt[ds[k]];
        result = PyFloat_FromDouble(km_w * (today - pairwise_sum(least, n)) + late_w * late);
        goto done;
    }
    rest = PyMem_Malloc(sizeof(double) * (size_t)(n + 1));
    e = PyMem_Malloc(sizeof(double) * (size_t)n);
    l = PyMem_Malloc(sizeof(double) * (size_t)n);
    dl = PyMem_Malloc(sizeof(double) * (size_t)n);
    du = PyMem_Malloc(sizeof(double) * (size_t)n);
    leg_min = PyMem_Malloc(sizeof(double) * (size_t)((n + kk) * n));
    leg_km = PyMem_Malloc(sizeof(double) * (size_t)((n + kk) * n));
    st = PyMem_Malloc(sizeof(double) * (size_t)kk);
    sh_end = PyMem_Malloc(sizeof(double) * (size_t)kk);
    cap = PyMem_Malloc(sizeof(int64_t) * (size_t)kk);
    cnow = PyMem_Malloc(sizeof(int64_t) * (size_t)kk);
    parents = PyMem_Malloc(sizeof(int64_t) * (size_t)(n * width));
    chosen = PyMem_Malloc(sizeof(int64_t) * (size_t)(n * width));
    rows = PyMem_Malloc(sizeof(int64_t) * (size_t)n);
    out_cnt = PyMem_Malloc(sizeof(int64_t) * (size_t)(width * kk));
    out_work = PyMem_Malloc(sizeof(double) * (size_t)(width * kk));
    out_cost = PyMem_Malloc(sizeof(double) * (size_t)width);
    total = PyMem_Malloc(sizeof(double) * (size_t)width);
    plan = PyMem_Malloc(sizeof(int64_t) * (size_t)n);
    if (!rest || !e || !l || !dl || !du || !leg_min || !leg_km || !st || !sh_end || !cap ||
        !cnow || !parents || !chosen || !rows || !out_cnt || !out_work || !out_cost || !total ||
        !plan) {
        PyErr_NoMemory();
        goto done;
    }
    double s = 0.0; /* the km the rides from i on could cost at least (a reversed cumsum) */
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        s += least[i];
        rest[i] = km_w * s;
    }
    rest[n] = km_w * 0.0;
    for (Py_ssize_t k = 0; k < kk; k++)
        tmp[k] = dh[ds[k]];
    double today = km_w * pairwise_sum(tmp, kk);
    for (Py_ssize_t k = 0; k < kk; k++)
        tmp[k] = lt[ds[k]];
    today = today + late_w * pairwise_sum(tmp, kk);
    double ceiling = today - min_saving + (0.0 > worse ? 0.0 : worse) + 1e-9;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r = rides[i];
        e[i] = E[r];
        l[i] = L[r];
        dl[i] = DL[r] + eps;
        du[i] = D[r];
        for (Py_ssize_t a = 0; a < n; a++) {
            leg_min[a * n + i] = dmin[rides[a] * N + r];
            leg_km[a * n + i] = dkm[rides[a] * N + r];
        }
        for (Py_ssize_t k = 0; k < kk; k++) {
            leg_min[(n + k) * n + i] = smin[ds[k] * N + r];
            leg_km[(n + k) * n + i] = skm[ds[k] * N + r];
        }
    }
    for (Py_ssize_t k = 0; k < kk; k++)
        cnow[k] = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        cnow[now[i]]++;
    int64_t c_lo = cnow[0], c_hi = cnow[0], ssq_now = 0;
    for (Py_ssize_t k = 0; k < kk; k++) {
        st[k] = sstart[ds[k]];
        sh_end[k] = overran[k] ? INFINITY : send[ds[k]] + eps;
        cap[k] = maxr[ds[k]];
        if (cap[k] < 0 || cnow[k] > cap[k])
            cap[k] = n;
        if (cnow[k] < c_lo)
            c_lo = cnow[k];
        if (cnow[k] > c_hi)
            c_hi = cnow[k];
        ssq_now += cnow[k] * cnow[k];
    }
    Py_ssize_t kept, inc, effort;
    if (beam_core(n, kk, width, km_w, late_w, ceiling, c_lo, c_hi, leg_min, leg_km, e, l, dl,
                  du, st, sh_end, cap, allowed, now, rest, parents, chosen, rows, out_cnt,
                  out_work, out_cost, &kept, &inc, &effort) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (kept < 0) {
        result = Py_BuildValue("nO", effort, Py_None);
        goto done;
    }
    /* The whole operating cost of each last plan that keeps the gap and the squared
     * deviation (see `km_replan`). */
    int64_t oth_max = -1, oth_min = n + 1;
    double wo_max = -INFINITY, wo_min = INFINITY;
    for (Py_ssize_t d = 0; d < K; d++) {
        if (inside[d] >= 0)
            continue;
        if (counts[d] > oth_max)
            oth_max = counts[d];
        if (counts[d] < oth_min)
            oth_min = counts[d];
        if (wl[d] > wo_max)
            wo_max = wl[d];
        if (wl[d] < wo_min)
            wo_min = wl[d];
    }
    for (Py_ssize_t r = 0; r < kept; r++) {
        const int64_t *cr = out_cnt + r * kk;
        const double *wr = out_work + r * kk;
        int64_t cmn = cr[0], cmx = cr[0], ssq = 0;
        double wmx = wr[0], wmn = wr[0];
        for (Py_ssize_t k = 0; k < kk; k++) {
            if (cr[k] < cmn)
                cmn = cr[k];
            if (cr[k] > cmx)
                cmx = cr[k];
            ssq += cr[k] * cr[k];
            if (wr[k] > wmx)
                wmx = wr[k];
            if (wr[k] < wmn)
                wmn = wr[k];
        }
        int64_t top = cmx > oth_max ? cmx : oth_max, bottom = cmn < oth_min ? cmn : oth_min;
        int ok = cmn >= c_lo && ssq <= ssq_now && top - bottom == gap;
        double w_hi = np_max(wmx, wo_max), w_lo = wmn <= wo_min ? wmn : wo_min;
        double spread = np_max(w_hi - w_lo - band, 0.0);
        total[r] = ok ? out_cost[r] + spread_w * spread : INFINITY;
    }
    double limit = total[inc] - eps;
    if (worse > 0) { /* an annealing step: the best plan but today's, if not `worse` dearer */
        limit = total[inc] + worse;
        total[inc] = INFINITY;
    }
    Py_ssize_t best = 0;
    for (Py_ssize_t r = 1; r < kept; r++)
        if (total[r] < total[best])
            best = r;
    if (!(total[best] < limit)) {
        result = Py_BuildValue("nO", effort, Py_None);
        goto done;
    }
    Py_ssize_t row = best, moved = 0;
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        plan[i] = chosen[i * width + row];
        row = (Py_ssize_t)parents[i * width + row];
        moved += plan[i] != now[i];
    }
    if (moved == 0) {
        result = Py_BuildValue("nO", effort, Py_None);
        goto done;
    }
    PyObject *steps = PyTuple_New(moved);
    if (steps == NULL)
        goto done;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (plan[i] == now[i])
            continue;
        PyObject *step = Py_BuildValue("LLL", (long long)rides[i], (long long)ds[now[i]],
                                       (long long)ds[plan[i]]);
        if (step == NULL) {
            Py_DECREF(steps);
            goto done;
        }
        PyTuple_SET_ITEM(steps, at++, step);
    }
    result = Py_BuildValue("nN", effort, steps);
done:
    PyMem_Free(inside);
    PyMem_Free(rides);
    PyMem_Free(now);
    PyMem_Free(allowed);
    PyMem_Free(least);
    PyMem_Free(tmp);
    PyMem_Free(rest);
    PyMem_Free(e);
    PyMem_Free(l);
    PyMem_Free(dl);
    PyMem_Free(du);
    PyMem_Free(leg_min);
    PyMem_Free(leg_km);
    PyMem_Free(st);
    PyMem_Free(sh_end);
    PyMem_Free(cap);
    PyMem_Free(cnow);
    PyMem_Free(parents);
    PyMem_Free(chosen);
    PyMem_Free(rows);
    PyMem_Free(out_cnt);
    PyMem_Free(out_work);
    PyMem_Free(out_cost);
    PyMem_Free(total);
    PyMem_Free(plan);
    for (int j = 0; j < 21; j++)
        if (bk[j].obj != NULL)
            PyBuffer_Release(&bk[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"beam", beam, METH_VARARGS, "km_repair.km_replan's beam."},
    {"replan", replan, METH_VARARGS, "km_repair.km_replan's and km_bound's whole arithmetic."},
    {"flatten", flatten, METH_VARARGS, "RouteArrays.__init__'s flat arrays."},
    {"schedule", schedule, METH_VARARGS, "feasibility.schedule_route's numbers."},
    {"features", features, METH_VARARGS, "dqn.features' candidate rows."},
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
