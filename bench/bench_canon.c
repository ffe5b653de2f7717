/*
 * Compares the cost of RFC 8785 canonical serialisation with jansson's
 * own compact, key-sorted writer on the same documents, and prints time
 * ratios only. See bench/README.md for how to read the output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "keyhole/canon.h"

/* Each timing runs at least this long, in nanoseconds. */
#define MIN_RUN_NS 100000000LL

/* Rounds in which the methods take turns. The ratio uses the median. */
#define ROUNDS 5

enum method { JANSSON_DUMPS, CANON_DUMP, CANON_HASH, METHOD_COUNT };

static const char *const method_names[METHOD_COUNT] = {
	"json_dumps", "kh_canon_dump", "kh_hash",
};

static long long now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Runs one method once. Returns 0, or -1 when it failed. */
static int run_once(enum method method, const json_t *doc)
{
	char hex[KH_HASH_HEX_LEN + 1];
	struct kh_err err;
	char *text = NULL;
	int rc = 0;

	switch (method) {
	case JANSSON_DUMPS:
		text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
		rc = text ? 0 : -1;
		break;
	case CANON_DUMP:
		rc = kh_canon_dump(doc, &text, NULL, &err);
		break;
	default:
		rc = kh_hash(doc, hex, &err);
		break;
	}
	free(text);
	return rc < 0 ? -1 : 0;
}

/* Returns the mean time of one call in nanoseconds, or -1 on failure. */
static double time_method(enum method method, const json_t *doc)
{
	long long start = now_ns();
	long long elapsed;
	long calls = 0;

	do {
		if (run_once(method, doc) < 0)
			return -1;
		calls++;
		elapsed = now_ns() - start;
	} while (elapsed < MIN_RUN_NS);
	return (double)elapsed / (double)calls;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Prints the median time ratio of each method to json_dumps. */
static int bench_document(const char *name, const json_t *doc)
{
	double samples[METHOD_COUNT][ROUNDS];
	double median[METHOD_COUNT];
	char *canon = NULL;
	size_t canon_len = 0;
	struct kh_err err;

	if (kh_canon_dump(doc, &canon, &canon_len, &err) < 0) {
		fprintf(stderr, "bench_canon: %s: %s\n", name, err.msg);
		return -1;
	}
	free(canon);

	for (int round = 0; round < ROUNDS; round++) {
		for (int m = 0; m < METHOD_COUNT; m++) {
			samples[m][round] = time_method((enum method)m, doc);
			if (samples[m][round] < 0) {
				fprintf(stderr, "bench_canon: %s: %s failed\n",
					name, method_names[m]);
				return -1;
			}
		}
	}
	for (int m = 0; m < METHOD_COUNT; m++) {
		qsort(samples[m], ROUNDS, sizeof(double), compare_doubles);
		median[m] = samples[m][ROUNDS / 2];
	}

	printf("%-8s %8zu bytes  canon/jansson time ratio: %.1fx  "
	       "hash/jansson time ratio: %.1fx\n",
	       name, canon_len, median[CANON_DUMP] / median[JANSSON_DUMPS],
	       median[CANON_HASH] / median[JANSSON_DUMPS]);
	return 0;
}

/* A permit's claims, shaped like the ones keyholed signs. */
static json_t *make_permit(void)
{
	return json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s,"
		" s:{s:[s,s], s:i}, s:{s:i, s:{s:i, s:i}}}",
		"iss", "broker-1", "sub", "uid:1000", "tenant", "acme",
		"env", "prod",
		"hA", "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
		"hP", "0d922ac8e15a6d17d5d50fab064983e86009ebae7b5998cbfc4ed172e6ff74a9",
		"hS", "369b3526948f4499f9687de43b21cf06baae1bf6f7b482a988dab45e6e045bc2",
		"iat", (json_int_t)1733300000, "exp", (json_int_t)1733300060,
		"jti", "q5Xv3tQ0cV7m9a1YH2kq8A", "rule", "curl-report",
		"grants", "secrets", "local/report.netrc", "local/api.token",
		"uses", 1,
		"constraints", "ttl", 60, "rate", "count", 10, "per", 3600);
}

/* A policy with many rules, shaped like policy v1. */
static json_t *make_policy(int rules)
{
	json_t *policy = json_pack("{s:s, s:s, s:i, s:[]}", "tenant", "acme",
				   "env", "prod", "max_ttl", 3600, "rules");
	json_t *list = json_object_get(policy, "rules");
	char id[32];

	for (int i = 0; i < rules; i++) {
		(void)snprintf(id, sizeof(id), "rule-%04d", i);
		(void)json_array_append_new(list, json_pack(
			"{s:s, s:s, s:{s:[s,s], s:[s]},"
			" s:{s:s, s:s, s:[s,s,s,s]},"
			" s:[{s:s, s:s, s:i}, {s:s, s:s, s:[s,s]}],"
			" s:{s:[s], s:i, s:i},"
			" s:{s:{s:i, s:i}, s:{s:s, s:f, s:i}}}",
			"id", id, "effect", i % 7 ? "permit" : "deny",
			"agents", "users", "alice", "bob", "groups", "agents",
			"action", "type", "exec", "exe", "/usr/bin/curl",
			"argv", "curl", "--netrc-file", "*", "**",
			"when", "path", "params.amount", "op", "<=", "value",
			1000 + i, "path", "params.currency", "op", "in",
			"value", "usd", "eur",
			"grant", "secrets", "local/report.netrc", "ttl", 60,
			"uses", 1,
			"limits", "rate", "count", 10, "per", 60, "budget",
			"path", "params.amount", "max", 25000.5 + i, "per",
			86400));
	}
	return policy;
}

/* Doubles of many magnitudes, where number formatting dominates. */
static json_t *make_numbers(int count)
{
	json_t *list = json_array();
	unsigned int state = 12345;

	for (int i = 0; i < count; i++) {
		state = state * 1103515245u + 12345u;
		(void)json_array_append_new(
			list, json_real((double)(state >> 8) /
					(double)(1u << (state % 24))));
	}
	return list;
}

int main(void)
{
	json_t *docs[3] = { make_permit(), make_policy(200),
			    make_numbers(1000) };
	const char *names[3] = { "permit", "policy", "numbers" };
	int rc = 0;

	printf("bench_canon: median of %d runs of at least %lld ms each; "
	       "ratio > 1 means slower than json_dumps\n",
	       ROUNDS, MIN_RUN_NS / 1000000);
	for (int i = 0; i < 3; i++) {
		if (!docs[i] || bench_document(names[i], docs[i]) < 0)
			rc = 1;
		json_decref(docs[i]);
	}
	return rc;
}
