// kernel_test.cpp: checks every kernel of libgreta_kernels against a host computation, through
// the C ABI only. Run on a GPU machine: kernel_test [bench]. Exit status 0 when all pass.
// Build with -ffp-contract=off semantics in mind: the host references round like the CPU
// engine (each product and sum in float where the bits must match exactly).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "greta_kernels.h"

static int failures;
static std::mt19937 rng(12345);

#define CHECK(call)                                                                                        \
	do {                                                                                                   \
		int rc_ = (call);                                                                                  \
		if (rc_ != GRETA_OK) {                                                                             \
			std::printf("FATAL %s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #call, rc_, greta_last_error()); \
			std::exit(1);                                                                                  \
		}                                                                                                  \
	} while (0)

static std::vector<float> randv(size_t n, float lo = -1.f, float hi = 1.f) {
	std::uniform_real_distribution<float> d(lo, hi);
	std::vector<float> v(n);
	for (auto &x : v) x = d(rng);
	return v;
}

static greta_buf dev(const std::vector<float> &v) {
	greta_buf b;
	CHECK(greta_alloc(v.size(), &b));
	CHECK(greta_upload(b, v.data(), v.size()));
	return b;
}

// poisoned allocates n elements filled with NaN, so unwritten outputs show.
static greta_buf poisoned(size_t n) { return dev(std::vector<float>(n, NAN)); }

static std::vector<float> host(greta_buf b, size_t n) {
	std::vector<float> v(n);
	CHECK(greta_download(v.data(), b, n));
	return v;
}

static uint32_t bits(float f) {
	uint32_t u;
	std::memcpy(&u, &f, 4);
	return u;
}

// expect_close compares got with a double reference: |got-ref| <= tol*scale[i] (scale from
// the magnitudes that fed each element) and never NaN.
static void expect_close(const char *what, const std::vector<float> &got, const std::vector<double> &ref,
                         const std::vector<double> &scale, double tol) {
	double worst = 0;
	size_t bad = 0, at = 0;
	for (size_t i = 0; i < ref.size(); i++) {
		const double e = std::fabs((double)got[i] - ref[i]) / (scale[i] > 0 ? scale[i] : 1);
		if (!(e <= tol)) {
			if (!bad) at = i;
			bad++;
		}
		if (e > worst || std::isnan(e)) worst = std::isnan(e) ? INFINITY : e;
	}
	std::printf("%-4s %-44s max err %.3g (tol %.1g)\n", bad ? "FAIL" : "ok", what, worst, tol);
	if (bad) {
		std::printf("     %zu bad of %zu; first at %zu: got %.9g want %.9g\n", bad, ref.size(), at, got[at], ref[at]);
		failures++;
	}
}

static void expect(bool cond, const std::string &what) {
	std::printf("%-4s %s\n", cond ? "ok" : "FAIL", what.c_str());
	if (!cond) failures++;
}

static void expect_error(int rc, int code, const char *needle, const char *what) {
	const bool good = rc == code && std::strstr(greta_last_error(), needle) != nullptr;
	std::printf("%-4s %-44s -> %d \"%s\"\n", good ? "ok" : "FAIL", what, rc, greta_last_error());
	if (!good) failures++;
}

static void test_embed() {
	const int vocab = 50, dim = 37, n = 4;
	auto table = randv((size_t)vocab * dim);
	std::vector<int32_t> tok = {3, 49, 0, 50};
	greta_buf t, tb = dev(table), out = poisoned((size_t)n * dim);
	CHECK(greta_alloc(n, &t));
	CHECK(greta_upload(t, tok.data(), n));
	CHECK(greta_embed(t, n, tb, vocab, dim, out));
	auto got = host(out, (size_t)n * dim);
	bool same = true, nan = true;
	for (int i = 0; i < 3; i++)
		for (int c = 0; c < dim; c++) same &= bits(got[i * dim + c]) == bits(table[tok[i] * dim + c]);
	for (int c = 0; c < dim; c++) nan &= std::isnan(got[3 * dim + c]);
	expect(same, "embed copies the token rows exactly");
	expect(nan, "embed of a token outside the vocabulary is NaN");
	greta_free(t), greta_free(tb), greta_free(out);
}

static void test_rmsnorm() {
	const int n = 5, dim = 1000;
	const float eps = 1e-5f;
	auto x = randv((size_t)n * dim, -3, 3), w = randv(dim, 0.5f, 1.5f);
	greta_buf xb = dev(x), wb = dev(w), out = poisoned((size_t)n * dim);
	CHECK(greta_rmsnorm(xb, wb, n, dim, eps, out));
	std::vector<double> ref(x.size()), scale(x.size());
	for (int i = 0; i < n; i++) {
		double ss = 0;
		for (int c = 0; c < dim; c++) ss += (double)x[i * dim + c] * x[i * dim + c];
		const double inv = 1 / std::sqrt(ss / dim + eps);
		for (int c = 0; c < dim; c++) {
			ref[i * dim + c] = x[i * dim + c] * inv * w[c];
			scale[i * dim + c] = std::fabs(ref[i * dim + c]) + 1e-6;
		}
	}
	expect_close("rmsnorm 5x1000", host(out, x.size()), ref, scale, 2e-6);
	CHECK(greta_rmsnorm(xb, wb, n, dim, eps, xb)); // in place
	auto again = host(xb, x.size()), first = host(out, x.size());
	expect(std::memcmp(again.data(), first.data(), 4 * x.size()) == 0, "rmsnorm in place gives the same bits");
	greta_free(xb), greta_free(wb), greta_free(out);
}

static std::vector<double> matmul_ref(const std::vector<float> &x, const std::vector<float> &w, int m, int k, int n,
                                      std::vector<double> *scale) {
	std::vector<double> y((size_t)m * n);
	scale->assign((size_t)m * n, 0);
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double s = 0, a = 0;
			for (int c = 0; c < k; c++) {
				s += (double)x[(size_t)i * k + c] * w[(size_t)j * k + c];
				a += std::fabs((double)x[(size_t)i * k + c] * w[(size_t)j * k + c]);
			}
			y[(size_t)i * n + j] = s;
			(*scale)[(size_t)i * n + j] = a;
		}
	return y;
}

typedef int (*product_fn)(greta_buf, int, int, greta_buf, int, const greta_seg *, int);

// run_product computes X W^T into three column segments with padded rows and reassembles Y.
// With bias (n values), each segment adds its part of it.
static std::vector<float> run_product(product_fn f, const std::vector<float> &x, const std::vector<float> &w, int m,
                                      int k, int n, const std::vector<float> *bias = nullptr) {
	greta_buf xb = dev(x), wb = dev(w);
	int cols[3] = {n / 2, n / 4, n - n / 2 - n / 4}, nsegs = 0, c0 = 0;
	greta_seg segs[3];
	std::vector<greta_buf> outs, biases;
	for (int s = 0; s < 3; s++) {
		if (cols[s] == 0) continue;
		const int ld = cols[s] + s; // padded rows in later segments
		outs.push_back(poisoned((size_t)m * ld));
		segs[nsegs] = greta_seg{outs.back(), ld, cols[s], {0, 0}};
		if (bias) {
			biases.push_back(dev(std::vector<float>(bias->begin() + c0, bias->begin() + c0 + cols[s])));
			segs[nsegs].bias = biases.back();
		}
		nsegs++;
		c0 += cols[s];
	}
	CHECK(f(xb, m, k, wb, n, segs, nsegs));
	for (auto b : biases) greta_free(b);
	std::vector<float> y((size_t)m * n);
	c0 = 0;
	for (int s = 0; s < nsegs; s++) {
		auto o = host(segs[s].buf, (size_t)m * segs[s].ld);
		for (int i = 0; i < m; i++)
			for (int j = 0; j < segs[s].cols; j++) y[(size_t)i * n + c0 + j] = o[(size_t)i * segs[s].ld + j];
		c0 += segs[s].cols;
		greta_free(segs[s].buf);
	}
	greta_free(xb), greta_free(wb);
	return y;
}

static void test_matmul() {
	const int shapes[][3] = {{1, 1, 1}, {5, 37, 19}, {130, 64, 300}, {257, 132, 129}, {64, 2048, 256}};
	for (auto &s : shapes) {
		const int m = s[0], k = s[1], n = s[2];
		auto x = randv((size_t)m * k), w = randv((size_t)n * k);
		std::vector<double> scale;
		auto ref = matmul_ref(x, w, m, k, n, &scale);
		char what[96];
		std::snprintf(what, sizeof what, "matmul m=%d k=%d n=%d (3 segments)", m, k, n);
		auto y = run_product(greta_matmul, x, w, m, k, n);
		expect_close(what, y, ref, scale, 1e-6);
		if (m > 1) {
			// A row's result must not depend on the rows beside it.
			const int r = m - 1;
			std::vector<float> xr(x.begin() + (size_t)r * k, x.begin() + (size_t)(r + 1) * k);
			auto yr = run_product(greta_matmul, xr, w, 1, k, n);
			expect(std::memcmp(yr.data(), y.data() + (size_t)r * n, 4 * n) == 0,
			       std::string(what) + ": last row alone gives the same bits");
		}
		if (m <= GRETA_MATVEC_MAX_ROWS) {
			std::snprintf(what, sizeof what, "matvec m=%d k=%d n=%d (3 segments)", m, k, n);
			expect_close(what, run_product(greta_matvec, x, w, m, k, n), ref, scale, 1e-6);
		}
	}
	// A segment's bias is one rounded addition after the finished sum, as the CPU adds q, k
	// and v biases: with a bias, each element is the unbiased product plus its bias, bit for
	// bit, on both kernels (Qwen2.5's q/k/v widths 896/128/128, as one stacked product).
	for (int m : {1, 3, 130}) {
		const int k = 896, n = 896 + 2 * 128;
		auto x = randv((size_t)m * k), w = randv((size_t)n * k), b = randv(n, -4, 4);
		for (product_fn f : {greta_matmul, greta_matvec}) {
			if (f == greta_matvec && m > GRETA_MATVEC_MAX_ROWS) continue;
			auto plain = run_product(f, x, w, m, k, n), biased = run_product(f, x, w, m, k, n, &b);
			int diff = 0;
			for (int i = 0; i < m; i++)
				for (int j = 0; j < n; j++) {
					volatile float want = plain[(size_t)i * n + j] + b[j];
					diff += bits(biased[(size_t)i * n + j]) != bits(want);
				}
			char what[128];
			std::snprintf(what, sizeof what, "%s m=%d k=%d n=%d with segment biases = product + bias bit for bit (%d differ)",
			              f == greta_matmul ? "matmul" : "matvec", m, k, n, diff);
			expect(diff == 0, what);
		}
	}
	for (int m = 1; m <= GRETA_MATVEC_MAX_ROWS; m++) {
		const int k = 2048, n = 300;
		auto x = randv((size_t)m * k), w = randv((size_t)n * k);
		std::vector<double> scale;
		auto ref = matmul_ref(x, w, m, k, n, &scale);
		char what[96];
		std::snprintf(what, sizeof what, "matvec m=%d k=%d n=%d (3 segments)", m, k, n);
		auto y1 = run_product(greta_matvec, x, w, m, k, n);
		expect_close(what, y1, ref, scale, 1e-6);
		auto y2 = run_product(greta_matvec, x, w, m, k, n);
		expect(std::memcmp(y1.data(), y2.data(), 4 * y1.size()) == 0, std::string(what) + ": repeats bit for bit");
	}
}

// rope_host is the rotation the kernel must give bit for bit: theta = pos * f_i in double,
// cos and sin rounded to float, each product and sum rounded (no contraction).
static std::vector<float> rope_host(std::vector<float> x, int n, int nh, int hd, int rd, int pos0, int style,
                                    const std::vector<double> &freq) {
	const int half = rd / 2;
	for (int r = 0; r < n; r++)
		for (int h = 0; h < nh; h++)
			for (int p = 0; p < half; p++) {
				const double th = (double)(pos0 + r) * freq[p];
				const float c = (float)std::cos(th), s = (float)std::sin(th);
				float *v = &x[(size_t)r * nh * hd + h * hd];
				const int a = style == GRETA_ROPE_NEOX ? p : 2 * p, b = style == GRETA_ROPE_NEOX ? p + half : 2 * p + 1;
				const float x0 = v[a], x1 = v[b];
				volatile float m0 = x0 * c, m1 = x1 * s, m2 = x0 * s, m3 = x1 * c;
				v[a] = m0 - m1;
				v[b] = m2 + m3;
			}
	return x;
}

// test_rope: both styles, with the device's base^(-2i/rope_dim) and with a host table (llama3
// factors and a linear scale, as internal/ref's ropeFreq makes them), rope_dim below head_dim
// (the tail of each head untouched), bit for bit against the host.
static void test_rope() {
	const int n = 3, nh = 4, hd = 16, rd = 12, pos0 = 1000;
	const double base = 10000;
	std::vector<double> plain(rd / 2), table(rd / 2);
	for (int p = 0; p < rd / 2; p++) {
		plain[p] = std::pow(base, -2.0 * p / rd);
		table[p] = std::pow(500000.0, -2.0 * p / rd) / (1.0 + 7.0 * p) / 4.0; // factors 1, 8, 15..., scale 4
	}
	greta_buf fb;
	CHECK(greta_alloc(table.size() * 2, &fb));
	CHECK(greta_upload(fb, table.data(), table.size() * 2));
	const greta_buf none = {0, 0};
	for (int style : {GRETA_ROPE_NORM, GRETA_ROPE_NEOX})
		for (bool tab : {false, true}) {
			auto x = randv((size_t)n * nh * hd);
			greta_buf xb = dev(x);
			CHECK(greta_rope(xb, n, nh, hd, rd, pos0, style, base, tab ? fb : none));
			auto got = host(xb, x.size());
			auto want = rope_host(x, n, nh, hd, rd, pos0, style, tab ? table : plain);
			int diff = 0, moved = 0;
			for (size_t i = 0; i < x.size(); i++) {
				diff += bits(got[i]) != bits(want[i]);
				moved += bits(want[i]) != bits(x[i]);
			}
			const int turned = n * nh * rd; // elements the rotation may change; the rest must not
			expect(diff == 0 && moved > turned / 2,
			       std::string("rope ") + (style == GRETA_ROPE_NEOX ? "neox" : "norm") + (tab ? " with a host table" : " base") +
			           " matches the host bit for bit (" + std::to_string(diff) + " of " + std::to_string(x.size()) +
			           " differ, " + std::to_string(moved) + " of " + std::to_string(turned) + " turned)");
			greta_free(xb);
		}
	// The NEOX pairs are (i, i + rope_dim/2): a row with a single non-zero element at i = 1
	// must move only elements 1 and 1 + rope_dim/2 (the normal style would touch 0 and 1).
	std::vector<float> one((size_t)hd, 0.f);
	one[1] = 1.f;
	greta_buf ob = dev(one);
	CHECK(greta_rope(ob, 1, 1, hd, rd, 5, GRETA_ROPE_NEOX, base, none));
	auto o = host(ob, one.size());
	bool where = true;
	for (int i = 0; i < hd; i++) where &= (i == 1 || i == 1 + rd / 2) ? o[i] != 0.f : o[i] == 0.f;
	expect(where, "rope neox turns element 1 against element 1 + rope_dim/2 only");
	greta_free(ob), greta_free(fb);
}

static std::vector<double> attn_ref(const std::vector<float> &q, const std::vector<float> &kc,
                                    const std::vector<float> &vc, int n, int pos0, int nh, int nkv, int hd,
                                    std::vector<double> *scale) {
	std::vector<double> out((size_t)n * nh * hd);
	scale->assign(out.size(), 0);
	const int group = nh / nkv;
	for (int i = 0; i < n; i++)
		for (int h = 0; h < nh; h++) {
			const int kvh = h / group, keys = pos0 + i + 1;
			std::vector<double> s(keys);
			double mx = -INFINITY;
			for (int j = 0; j < keys; j++) {
				double d = 0;
				for (int e = 0; e < hd; e++)
					d += (double)q[(size_t)i * nh * hd + h * hd + e] * kc[(size_t)j * nkv * hd + kvh * hd + e];
				s[j] = d / std::sqrt((double)hd);
				mx = std::max(mx, s[j]);
			}
			double l = 0;
			for (auto &v : s) l += (v = std::exp(v - mx));
			for (int e = 0; e < hd; e++) {
				double o = 0, a = 0;
				for (int j = 0; j < keys; j++) {
					o += s[j] * vc[(size_t)j * nkv * hd + kvh * hd + e];
					a += s[j] * std::fabs(vc[(size_t)j * nkv * hd + kvh * hd + e]);
				}
				out[(size_t)i * nh * hd + h * hd + e] = o / l;
				(*scale)[(size_t)i * nh * hd + h * hd + e] = a / l;
			}
		}
	return out;
}

static void test_attention() {
	struct Case {
		int n, pos0, nh, nkv, hd;
		bool prefill;
	} cases[] = {{70, 0, 4, 2, 64, true}, {3, 67, 4, 2, 64, true},  {130, 0, 2, 1, 16, true},
	             {65, 0, 4, 4, 32, true}, {40, 0, 2, 1, 128, true}, {1, 69, 4, 2, 64, false},
	             {5, 20, 6, 3, 24, false}, {1, 0, 2, 2, 16, false}, {2, 300, 2, 1, 260, false}, {3, 10, 2, 1, 18, false},
	             {4, 130, 8, 2, 32, false},
	             // The head geometry of the presets: Qwen2.5 0.5B (14/2 heads of 64: 7 query heads
	             // per KV head), tiny-qwen2 (14/2 of 32), Llama 3.2 1B (32/8 of 64).
	             {70, 0, 14, 2, 64, true}, {5, 131, 14, 2, 64, true}, {1, 200, 14, 2, 64, false},
	             {3, 64, 14, 2, 64, false}, {130, 0, 14, 2, 32, true}, {1, 127, 14, 2, 32, false},
	             {100, 0, 32, 8, 64, true}, {2, 129, 32, 8, 64, false},
	             // More query heads per KV head than the split kernel's block has threads: the
	             // one-block-per-head kernel takes them.
	             {2, 65, 129, 1, 8, false}};
	for (auto &c : cases) {
		const int keys = c.pos0 + c.n, qw = c.nh * c.hd, kvw = c.nkv * c.hd;
		auto q = randv((size_t)c.n * qw, -2, 2), kc = randv((size_t)keys * kvw, -2, 2), vc = randv((size_t)keys * kvw);
		std::vector<double> scale;
		auto ref = attn_ref(q, kc, vc, c.n, c.pos0, c.nh, c.nkv, c.hd, &scale);
		greta_buf qb = dev(q), kb = dev(kc), vb = dev(vc), out = poisoned((size_t)c.n * qw), scr;
		CHECK(greta_alloc(greta_attention_decode_scratch(c.n, c.pos0, c.nh, c.hd), &scr));
		auto run = [&]() {
			if (c.prefill)
				CHECK(greta_attention_prefill(qb, kb, vb, c.n, c.pos0, c.nh, c.nkv, c.hd, out));
			else
				CHECK(greta_attention_decode(qb, kb, vb, c.n, c.pos0, c.nh, c.nkv, c.hd, scr, out));
			return host(out, (size_t)c.n * qw);
		};
		auto y1 = run(), y2 = run();
		char what[96];
		std::snprintf(what, sizeof what, "attention_%s n=%d pos0=%d heads %d/%d hd=%d", c.prefill ? "prefill" : "decode",
		              c.n, c.pos0, c.nh, c.nkv, c.hd);
		expect_close(what, y1, ref, scale, 2e-6);
		expect(std::memcmp(y1.data(), y2.data(), 4 * y1.size()) == 0, std::string(what) + ": repeats bit for bit");
		greta_free(qb), greta_free(kb), greta_free(vb), greta_free(out), greta_free(scr);
	}
}

static float from_bits(uint32_t u) {
	float f;
	std::memcpy(&f, &u, 4);
	return f;
}

// The host's twins of golden.RoundF16 and golden.RoundBF16 (whose Go tests check them against
// a search over every half value): the device must give the same bits.
static float host_round_f16(float v) {
	const uint32_t b = bits(v), sign = b & 0x80000000u, abs = b & 0x7fffffffu;
	if (abs > 0x7f800000u) return from_bits(sign | 0x7fc00000u | (abs & 0x007fe000u));
	if (abs >= 0x477ff000u) return from_bits(sign | 0x7f800000u);
	if (abs >= 0x38800000u) return from_bits(sign | ((abs + 0x0fffu + ((abs >> 13) & 1u)) & ~0x1fffu));
	const double q = std::nearbyint((double)from_bits(abs) * 16777216.0);
	return from_bits(sign | bits((float)(q / 16777216.0)));
}

static float host_round_bf16(float v) {
	const uint32_t b = bits(v);
	if ((b & 0x7fffffffu) > 0x7f800000u) return from_bits((b & 0x80000000u) | 0x7fc00000u | (b & 0x007f0000u));
	return from_bits((b + 0x7fffu + ((b >> 16) & 1u)) & ~0xffffu);
}

// test_fault_kinds applies each fault kind to a channel range of some rows: those elements
// must be what trace.Fault.Apply makes of them, bit for bit, and every other one untouched.
static void test_fault_kinds() {
	const int width = 40, rows = 9, row0 = 3, nrows = 4, ch0 = 5, nch = 30;
	auto x = randv((size_t)width * rows, -2, 2);
	// Values where rounding is delicate: half's subnormals, ties, overflow, a NaN, infinities.
	const float special[] = {1e-6f, -3e-8f, 2.9802322e-8f, 65519.f, 65520.f, 1e10f, -0.f, from_bits(0x3f808000u),
	                         from_bits(0x3f801000u), from_bits(0x7fa00001u), INFINITY, -INFINITY, 5.9604645e-8f};
	for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) x[(size_t)(row0 + 1) * width + ch0 + i] = special[i];
	const struct {
		int kind;
		const char *name;
		float (*want)(float);
	} kinds[] = {
		{GRETA_FAULT_ZERO, "zero", [](float) { return 0.0f; }},
		{GRETA_FAULT_NAN, "nan", [](float) { return from_bits(0x7fc00000u); }},
		{GRETA_FAULT_INF, "inf", [](float) { return (float)INFINITY; }},
		{GRETA_FAULT_SIGN, "sign", [](float v) { return from_bits(bits(v) ^ 0x80000000u); }},
		{GRETA_FAULT_ROUND_F16, "round=f16", host_round_f16},
		{GRETA_FAULT_ROUND_BF16, "round=bf16", host_round_bf16},
	};
	for (const auto &k : kinds) {
		greta_buf xb = dev(x);
		CHECK(greta_fault(xb, width, row0, nrows, ch0, nch, k.kind, 0, 0));
		auto got = host(xb, x.size());
		int diff = 0;
		for (int r = 0; r < rows; r++)
			for (int c = 0; c < width; c++) {
				const size_t i = (size_t)r * width + c;
				const bool hit = r >= row0 && r < row0 + nrows && c >= ch0 && c < ch0 + nch;
				diff += bits(got[i]) != bits(hit ? k.want(x[i]) : x[i]);
			}
		expect(diff == 0, std::string("fault ") + k.name + " on channels 5..34 of rows 3..6 bit for bit, others untouched (" +
		                      std::to_string(diff) + " differ)");
		greta_free(xb);
	}
}

static void test_elementwise() {
	const size_t count = 100003;
	auto g = randv(count, -8, 8), u = randv(count), a = randv(count);
	greta_buf gb = dev(g), ub = dev(u), ab = dev(a), out = poisoned(count);
	CHECK(greta_swiglu(gb, ub, count, out));
	std::vector<double> ref(count), scale(count);
	for (size_t i = 0; i < count; i++) {
		ref[i] = g[i] / (1 + std::exp(-(double)g[i])) * u[i];
		scale[i] = std::fabs(ref[i]) + 1e-30;
	}
	expect_close("swiglu", host(out, count), ref, scale, 1e-6);
	CHECK(greta_add(ab, ub, count, ab));
	auto sum = host(ab, count);
	bool exact = true;
	for (size_t i = 0; i < count; i++) exact &= bits(sum[i]) == bits(a[i] + u[i]);
	expect(exact, "add in place matches the host bit for bit");

	// Fault: x*scale+add rounded twice. Values where a fused multiply-add would differ.
	const int width = 33, rows = 10, row0 = 2, nrows = 5;
	const float sc = 1.001f, ad = -0.37f;
	auto x = randv((size_t)width * rows);
	greta_buf xb = dev(x);
	CHECK(greta_fault(xb, width, row0, nrows, 0, width, GRETA_FAULT_AFFINE, sc, ad));
	auto got = host(xb, x.size());
	int diff = 0, fused = 0;
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < width; c++) {
			const size_t i = (size_t)r * width + c;
			volatile float p = x[i] * sc;
			const float want = (r >= row0 && r < row0 + nrows) ? p + ad : x[i];
			diff += bits(got[i]) != bits(want);
			fused += bits(std::fmaf(x[i], sc, ad)) != bits((float)p + ad);
		}
	expect(diff == 0, "fault rows = float32(x*scale)+add bit for bit, other rows untouched (" + std::to_string(fused) +
	                      " elements where fused would differ)");

	test_fault_kinds();

	std::vector<int32_t> idx = {3, 0, 3, 99};
	greta_buf ib, gout = poisoned(idx.size() * width);
	CHECK(greta_alloc(idx.size(), &ib));
	CHECK(greta_upload(ib, idx.data(), idx.size()));
	CHECK(greta_gather(xb, width, ib, (int)idx.size(), gout));
	auto gg = host(gout, idx.size() * width);
	bool ok = true;
	for (int j = 0; j < 3; j++) ok &= std::memcmp(&gg[j * width], &got[idx[j] * width], 4 * width) == 0;
	bool nan = true;
	for (int c = 0; c < width; c++) nan &= std::isnan(gg[3 * width + c]);
	expect(ok && nan, "gather copies the listed rows; a row outside the source is NaN");
	greta_free(gb), greta_free(ub), greta_free(ab), greta_free(out), greta_free(xb), greta_free(ib), greta_free(gout);
}

// sketch_ref: the sums of golden's sequential loop, each product rounded before its addition.
static std::vector<double> sketch_ref(const std::vector<float> &x, int nrows, int n, const std::vector<float> &coef) {
	std::vector<double> out((size_t)nrows * GRETA_SKETCH_SUMS, 0.0);
	for (int r = 0; r < nrows; r++) {
		double *o = &out[(size_t)r * GRETA_SKETCH_SUMS];
		for (int i = 0; i < n; i++) {
			const double v = x[(size_t)r * n + i];
			for (int j = 0; j < GRETA_SKETCH_PROJ; j++) {
				volatile double p = (double)coef[(size_t)i * GRETA_SKETCH_PROJ + j] * v;
				o[j] += p;
			}
			volatile double sq = v * v;
			o[GRETA_SKETCH_PROJ] += sq;
			o[GRETA_SKETCH_PROJ + 1] += std::fabs(v);
		}
	}
	return out;
}

static void test_sketch() {
	for (int nrows : {3, 8, 13})
	for (int n : {1, 64, 2048, 32000}) {
		auto x = randv((size_t)nrows * n, -30, 30);
		x[0] = -0.0f;
		if (n > 1) x[1] = 1e-40f; // subnormal
		auto coef = randv((size_t)n * GRETA_SKETCH_PROJ, -50, 50);
		for (int i = 0; i < n; i++)
			for (int j = 0; j < 32; j++) coef[(size_t)i * GRETA_SKETCH_PROJ + j] = (rng() & 1) ? 1.f : -1.f;
		std::vector<double> coef64(coef.begin(), coef.end());
		greta_buf xb = dev(x), cb, out = poisoned((size_t)nrows * GRETA_SKETCH_SUMS * 2);
		CHECK(greta_alloc(coef64.size() * 2, &cb));
		CHECK(greta_upload(cb, coef64.data(), coef64.size() * 2));
		CHECK(greta_sketch(xb, nrows, n, cb, out));
		std::vector<double> got((size_t)nrows * GRETA_SKETCH_SUMS);
		CHECK(greta_download(got.data(), out, got.size() * 2));
		auto want = sketch_ref(x, nrows, n, coef);
		int diff = 0;
		for (size_t i = 0; i < got.size(); i++) diff += std::memcmp(&got[i], &want[i], 8) != 0;
		expect(diff == 0, "sketch sums of " + std::to_string(nrows) + " rows of " + std::to_string(n) +
		                      " match the host's sequential loop bit for bit (" + std::to_string(diff) + " differ)");
		greta_free(xb), greta_free(cb), greta_free(out);
	}
}

// test_trace_queue: copies on the trace queue see the main queue's work up to the fence,
// land in page-locked memory once their ticket is waited for, and sketches queued there are
// read back by greta_download.
static void test_trace_queue() {
	const size_t n = 1 << 20;
	auto a = randv(n), b = randv(n);
	greta_buf da = dev(a), db = dev(b), sum = poisoned(n);
	CHECK(greta_add(da, db, n, sum)); // main queue
	CHECK(greta_trace_fence());
	void *p = nullptr;
	CHECK(greta_host_alloc(n, &p));
	float *h = static_cast<float *>(p);
	CHECK(greta_trace_download(h, sum, n));
	uint64_t t = 0;
	CHECK(greta_trace_ticket(&t));
	CHECK(greta_trace_wait(t));
	size_t diff = 0;
	for (size_t i = 0; i < n; i++) diff += bits(h[i]) != bits(a[i] + b[i]);
	expect(diff == 0, "a copy on the trace queue after a fence holds the main queue's result (" +
	                      std::to_string(diff) + " differ)");
	expect_error(greta_trace_wait(0), GRETA_ERR_ARG, "no ticket", "waiting for no ticket is refused");
	expect_error(greta_trace_download(h, sum, n + 1), GRETA_ERR_ARG, "src holds 1048576 elements",
	             "a trace copy past its source is refused");
	expect_error(greta_host_alloc(0, &p), GRETA_ERR_ARG, "zero elements", "an empty host buffer is refused");
	CHECK(greta_host_free(h));
	greta_free(da), greta_free(db), greta_free(sum);
}

static void test_errors() {
	greta_buf small, big, v;
	CHECK(greta_alloc(10, &small));
	CHECK(greta_alloc(1000, &big));
	greta_seg seg = {small, 10, 10};
	expect_error(greta_matmul(big, 10, 10, big, 10, &seg, 1), GRETA_ERR_ARG, "output segment holds 10 elements",
	             "matmul into a short output is refused");
	expect_error(greta_rmsnorm(small, small, 3, 4, 1e-5f, big), GRETA_ERR_ARG, "x holds 10 elements, the shapes need 12",
	             "rmsnorm past the end of x is refused");
	expect_error(greta_view(small, 8, 3, &v), GRETA_ERR_ARG, "past the end", "a view past the end is refused");
	greta_seg biased = {big, 10, 10, small};
	biased.bias.count = 9;
	expect_error(greta_matmul(big, 10, 10, big, 10, &biased, 1), GRETA_ERR_ARG, "segment bias holds 9 elements, the shapes need 10",
	             "matmul with a short segment bias is refused");
	const greta_buf none = {0, 0};
	expect_error(greta_rope(big, 2, 2, 8, 8, 0, 2, 10000, none), GRETA_ERR_ARG, "unknown style 2",
	             "rope of an unknown style is refused");
	expect_error(greta_rope(big, 2, 2, 12, 12, 0, GRETA_ROPE_NEOX, 10000, small), GRETA_ERR_ARG,
	             "freqs holds 10 elements, the shapes need 12", "rope with a table short of rope_dim/2 doubles is refused");
	CHECK(greta_view(small, 1, 9, &v));
	expect_error(greta_rope(big, 2, 2, 8, 8, 0, GRETA_ROPE_NEOX, 10000, v), GRETA_ERR_ARG, "8-byte boundary",
	             "rope with a misaligned table is refused");
	expect_error(greta_rope(big, 2, 2, 8, 8, 0, GRETA_ROPE_NORM, 0, none), GRETA_ERR_ARG, "base = 0",
	             "rope without a table needs a positive base");
	expect_error(greta_attention_prefill(big, big, big, 2, 0, 2, 2, 24, big), GRETA_ERR_ARG, "head_dim 24",
	             "prefill attention with head_dim 24 is refused");
	expect_error(greta_attention_decode(big, big, big, 2, 0, 3, 2, 8, big, big), GRETA_ERR_ARG, "not a multiple",
	             "3 heads over 2 KV heads is refused");
	expect_error(greta_fault(small, 5, 1, 2, 0, 5, GRETA_FAULT_AFFINE, 1, 0), GRETA_ERR_ARG,
	             "x holds 10 elements, the shapes need 15", "a fault past the end is refused");
	expect_error(greta_fault(small, 5, 0, 1, 3, 3, GRETA_FAULT_ZERO, 1, 0), GRETA_ERR_ARG,
	             "channels 3..5 outside the row width 5", "a fault past the row's channels is refused");
	expect_error(greta_fault(small, 5, 0, 1, 0, 5, 7, 1, 0), GRETA_ERR_ARG, "unknown kind 7",
	             "a fault of an unknown kind (a shift) is refused");
	expect_error(greta_embed(small, 70000, big, 10, 10, big), GRETA_ERR_ARG, "at most 65535 per launch",
	             "an embedding of 70000 rows in one launch is refused");
	expect_error(greta_sketch(big, 2, 5, big, small), GRETA_ERR_ARG, "out holds 10 elements, the shapes need 392",
	             "sketch sums into a short output are refused");
	expect_error(greta_sketch(big, 2, 5, small, big), GRETA_ERR_ARG, "coef holds 10 elements, the shapes need 960",
	             "sketch with a short coefficient table is refused");
	greta_free(small), greta_free(big);
}

template <typename F> static double time_ms(F f, int reps) {
	f();
	CHECK(greta_sync());
	auto t0 = std::chrono::steady_clock::now();
	for (int i = 0; i < reps; i++) f();
	CHECK(greta_sync());
	return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

// The kernels at the shapes of one layer of a model of the presets, prefill of 1653 tokens
// and decode at position 1652, plus the output projection of one row (decode's logits).
struct Shape {
	const char *name;
	int layers, dim, ffn, nh, nkv, hd, vocab;
};

static void bench_shape(const Shape &sh) {
	const int m = 1653, dim = sh.dim, ffn = sh.ffn, kvw = sh.nkv * sh.hd, nh = sh.nh, nkv = sh.nkv, hd = sh.hd;
	struct P {
		const char *name;
		int k, n;
	} ps[] = {{"qkv", dim, nh * hd + 2 * kvw}, {"o", nh * hd, dim}, {"gate+up", dim, 2 * ffn}, {"down", ffn, dim}};
	double total = 0, decode = 0;
	for (auto &p : ps) {
		greta_buf x = dev(randv((size_t)m * p.k)), w = dev(randv((size_t)p.n * p.k)), y, y1;
		CHECK(greta_alloc((size_t)m * p.n, &y));
		CHECK(greta_alloc((size_t)p.n, &y1));
		greta_seg s = {y, p.n, p.n, {0, 0}}, s1 = {y1, p.n, p.n, {0, 0}};
		const double ms = time_ms([&] { CHECK(greta_matmul(x, m, p.k, w, p.n, &s, 1)); }, 10);
		const double mv = time_ms([&] { CHECK(greta_matvec(x, 1, p.k, w, p.n, &s1, 1)); }, 50);
		total += ms, decode += mv;
		std::printf("bench %s matmul %-8s %4dx%4dx%6d %8.3f ms %6.1f TFLOP/s | matvec %7.1f us %6.0f GB/s\n", sh.name,
		            p.name, m, p.k, p.n, ms, 2.0 * m * p.k * p.n / ms / 1e9, mv * 1e3, 4.0 * p.n * p.k / mv / 1e6);
		greta_free(x), greta_free(w), greta_free(y), greta_free(y1);
	}
	std::printf("bench %s products per layer: prefill %.3f ms (x%d %.1f ms), decode %.1f us (x%d %.2f ms)\n", sh.name,
	            total, sh.layers, total * sh.layers, decode * 1e3, sh.layers, decode * sh.layers);
	{
		greta_buf x = dev(randv(dim)), w = dev(randv((size_t)sh.vocab * dim)), y;
		CHECK(greta_alloc((size_t)sh.vocab, &y));
		greta_seg s = {y, sh.vocab, sh.vocab, {0, 0}};
		const double mv = time_ms([&] { CHECK(greta_matvec(x, 1, dim, w, sh.vocab, &s, 1)); }, 20);
		std::printf("bench %s logits matvec 1x%dx%d %.1f us %.0f GB/s\n", sh.name, dim, sh.vocab, mv * 1e3,
		            4.0 * sh.vocab * dim / mv / 1e6);
		greta_free(x), greta_free(w), greta_free(y);
	}
	greta_buf q = dev(randv((size_t)m * nh * hd)), kc = dev(randv((size_t)m * kvw)), vc = dev(randv((size_t)m * kvw)),
	          out, scr;
	CHECK(greta_alloc((size_t)m * nh * hd, &out));
	CHECK(greta_alloc(greta_attention_decode_scratch(1, m - 1, nh, hd), &scr));
	const double pa = time_ms([&] { CHECK(greta_attention_prefill(q, kc, vc, m, 0, nh, nkv, hd, out)); }, 10);
	const double da = time_ms([&] { CHECK(greta_attention_decode(q, kc, vc, 1, m - 1, nh, nkv, hd, scr, out)); }, 50);
	const greta_buf none = {0, 0};
	const double ro = time_ms([&] { CHECK(greta_rope(q, m, nh, hd, hd, 0, GRETA_ROPE_NEOX, 10000, none)); }, 10);
	std::printf("bench %s attention prefill n=%d %.3f ms (x%d %.1f ms) | decode at pos %d %.1f us | rope of q %.3f ms\n",
	            sh.name, m, pa, sh.layers, pa * sh.layers, m - 1, da * 1e3, ro);
	greta_free(q), greta_free(kc), greta_free(vc), greta_free(out), greta_free(scr);
}

static void bench() {
	const Shape shapes[] = {{"tinyllama", 22, 2048, 5632, 32, 4, 64, 32000},
	                        {"llama3.2-1b", 16, 2048, 8192, 32, 8, 64, 128256},
	                        {"qwen2.5-0.5b", 24, 896, 4864, 14, 2, 64, 151936}};
	for (auto &sh : shapes) bench_shape(sh);
	for (int n : {2048, 32000, 151936}) {
		const int rows = 51;
		greta_buf x = dev(randv((size_t)rows * n)), c = dev(randv((size_t)n * GRETA_SKETCH_PROJ * 2)), o;
		CHECK(greta_alloc((size_t)rows * GRETA_SKETCH_SUMS * 2, &o));
		const double ms = time_ms([&] { CHECK(greta_sketch(x, rows, n, c, o)); }, 10);
		std::printf("bench sketch %d rows of %d: %.3f ms\n", rows, n, ms);
		greta_free(x), greta_free(c), greta_free(o);
	}
}

int main(int argc, char **argv) {
	int count = 0;
	CHECK(greta_device_count(&count));
	CHECK(greta_init(0));
	char name[256], arch[64];
	int warp = 0;
	uint64_t total = 0, fr = 0;
	CHECK(greta_device_name(name, sizeof name));
	CHECK(greta_device_arch(arch, sizeof arch));
	CHECK(greta_device_info(&warp, &total, &fr));
	std::printf("%s %s: %s (%s), %d device(s), wavefront %d, %.1f GiB\n", greta_platform(), arch, name, arch, count,
	            warp, total / 1073741824.0);
	test_embed();
	test_rmsnorm();
	test_matmul();
	test_rope();
	test_attention();
	test_elementwise();
	test_sketch();
	test_trace_queue();
	test_errors();
	CHECK(greta_sync());
	if (argc > 1 && std::strcmp(argv[1], "bench") == 0) bench();
	std::printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
