/*
 * The ledger keeps two hash maps keyed by string: mint events per
 * "<uid>:<rule>" (kept sorted by time, so a window is found by binary
 * search) and per-jti records of uses, revocation and the minting
 * decision. Keys are hashed with SipHash (crypto_shorthash) under a
 * random per-ledger key, so that chosen jtis cannot force collisions.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyhole/ledger.h"

/* Initial slot count of a map; it doubles at half load. */
#define MAP_MIN_SLOTS 64

struct slot {
	char *key; /* NULL for an empty slot */
	uint64_t hash;
	void *value;
};

struct map {
	struct slot *slots;
	size_t cap; /* a power of two */
	size_t count;
};

struct mint_event {
	int64_t time;
	double amount;
};

/* Mint events of one (uid, rule), sorted by time ascending. */
struct series {
	struct mint_event *events;
	size_t len;
	size_t cap;
};

struct jti_entry {
	int64_t exp;
	uint32_t uses;
	bool revoked;
	bool has_decision;
	uint64_t decision_seq;
	char decision_hash[65];
};

struct kh_ledger {
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	struct map mints; /* "<uid>:<rule>" -> struct series */
	struct map jtis;  /* jti -> struct jti_entry */
};

static uint64_t key_hash(const struct kh_ledger *ledger, const char *key)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t hash;

	crypto_shorthash(out, (const unsigned char *)key, strlen(key),
			 ledger->hash_key);
	memcpy(&hash, out, sizeof(hash));
	return hash;
}

static struct slot *map_find(const struct map *map, const char *key,
			     uint64_t hash)
{
	size_t mask = map->cap - 1;

	if (!map->cap)
		return NULL;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct slot *slot = &map->slots[i];

		if (!slot->key)
			return NULL;
		if (slot->hash == hash && strcmp(slot->key, key) == 0)
			return slot;
	}
}

/* Places an entry in a table known to have a free slot. */
static void map_place(struct slot *slots, size_t cap, const struct slot *entry)
{
	size_t mask = cap - 1;
	size_t i = entry->hash & mask;

	while (slots[i].key)
		i = (i + 1) & mask;
	slots[i] = *entry;
}

static int map_grow(struct map *map)
{
	size_t cap = map->cap ? map->cap * 2 : MAP_MIN_SLOTS;
	struct slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < map->cap; i++)
		if (map->slots[i].key)
			map_place(slots, cap, &map->slots[i]);
	free(map->slots);
	map->slots = slots;
	map->cap = cap;
	return 0;
}

/* Inserts key (copied) with value; the key must not be present. */
static int map_insert(struct map *map, const char *key, uint64_t hash,
		      void *value)
{
	struct slot entry = { .hash = hash, .value = value };

	if ((map->count + 1) * 2 > map->cap && map_grow(map) < 0)
		return -ENOMEM;
	entry.key = strdup(key);
	if (!entry.key)
		return -ENOMEM;
	map_place(map->slots, map->cap, &entry);
	map->count++;
	return 0;
}

/*
 * Rebuilds the table without the entries that keep() rejects, which are
 * passed to drop(). keep() must not change the entries. Open addressing
 * has no cheap single delete, and pruning visits every entry anyway.
 */
static void map_filter(struct map *map, bool (*keep)(const void *, void *),
		       void (*drop)(void *), void *ctx)
{
	size_t kept = 0;
	size_t cap = MAP_MIN_SLOTS;
	struct slot *slots;

	for (size_t i = 0; i < map->cap; i++)
		if (map->slots[i].key && keep(map->slots[i].value, ctx))
			kept++;
	if (kept == map->count)
		return;
	while (kept * 2 > cap)
		cap *= 2;
	/* Pruning only saves memory, so without memory keep everything. */
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return;
	for (size_t i = 0; i < map->cap; i++) {
		struct slot *entry = &map->slots[i];

		if (!entry->key)
			continue;
		if (keep(entry->value, ctx)) {
			map_place(slots, cap, entry);
			continue;
		}
		free(entry->key);
		drop(entry->value);
	}
	free(map->slots);
	map->slots = slots;
	map->cap = cap;
	map->count = kept;
}

static void map_free(struct map *map, void (*drop)(void *))
{
	for (size_t i = 0; i < map->cap; i++) {
		if (!map->slots[i].key)
			continue;
		free(map->slots[i].key);
		drop(map->slots[i].value);
	}
	free(map->slots);
	memset(map, 0, sizeof(*map));
}

static void series_free(void *value)
{
	struct series *series = value;

	if (series)
		free(series->events);
	free(series);
}

static void jti_free(void *value)
{
	free(value);
}

int kh_ledger_new(struct kh_ledger **out)
{
	struct kh_ledger *ledger;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	ledger = calloc(1, sizeof(*ledger));
	if (!ledger)
		return -ENOMEM;
	randombytes_buf(ledger->hash_key, sizeof(ledger->hash_key));
	*out = ledger;
	return 0;
}

void kh_ledger_free(struct kh_ledger *ledger)
{
	if (!ledger)
		return;
	map_free(&ledger->mints, series_free);
	map_free(&ledger->jtis, jti_free);
	free(ledger);
}

/* Builds the mint key "<uid>:<rule>"; the uid's digits cannot hold ':'. */
static int mint_key(const char *rule, uid_t uid, char *buf, size_t size)
{
	int n;

	if (!rule)
		return -EINVAL;
	n = snprintf(buf, size, "%u:%s", (unsigned)uid, rule);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static struct series *find_series(const struct kh_ledger *ledger,
				  const char *rule, uid_t uid)
{
	char key[256];
	struct slot *slot;

	if (!ledger || mint_key(rule, uid, key, sizeof(key)) < 0)
		return NULL;
	slot = map_find(&ledger->mints, key, key_hash(ledger, key));
	return slot ? slot->value : NULL;
}

/* Index of the first event with time > t. */
static size_t upper_bound(const struct series *series, int64_t t)
{
	size_t low = 0;
	size_t high = series->len;

	while (low < high) {
		size_t mid = low + (high - low) / 2;

		if (series->events[mid].time <= t)
			low = mid + 1;
		else
			high = mid;
	}
	return low;
}

/* Makes room for one more event, so the next series_add does not allocate. */
static int series_reserve(struct series *series)
{
	size_t cap;
	struct mint_event *events;

	if (series->len < series->cap)
		return 0;
	cap = series->cap ? series->cap * 2 : 16;
	events = reallocarray(series->events, cap, sizeof(*events));
	if (!events)
		return -ENOMEM;
	series->events = events;
	series->cap = cap;
	return 0;
}

static int series_add(struct series *series, int64_t time, double amount)
{
	size_t pos;
	int r = series_reserve(series);

	if (r < 0)
		return r;
	/* Appends in the usual case; a clock step back inserts in order. */
	pos = upper_bound(series, time);
	memmove(&series->events[pos + 1], &series->events[pos],
		(series->len - pos) * sizeof(series->events[0]));
	series->events[pos].time = time;
	series->events[pos].amount = amount;
	series->len++;
	return 0;
}

/*
 * Finds or creates the series of (rule, uid) with room for one more
 * event. An empty series left behind by a failed caller reads as no
 * mints and is pruned like an expired one.
 */
static int series_upsert(struct kh_ledger *ledger, const char *rule,
			 uid_t uid, struct series **out)
{
	char key[256];
	uint64_t hash;
	struct slot *slot;
	struct series *series;
	int rc = ledger ? mint_key(rule, uid, key, sizeof(key)) : -EINVAL;

	*out = NULL;
	if (rc)
		return rc;
	hash = key_hash(ledger, key);
	slot = map_find(&ledger->mints, key, hash);
	if (slot) {
		series = slot->value;
		rc = series_reserve(series);
		goto out;
	}
	series = calloc(1, sizeof(*series));
	if (!series)
		return -ENOMEM;
	rc = series_reserve(series);
	if (!rc)
		rc = map_insert(&ledger->mints, key, hash, series);
	if (rc)
		series_free(series);
out:
	if (!rc)
		*out = series;
	return rc;
}

int kh_ledger_reserve_mint(struct kh_ledger *ledger, const char *rule,
			   uid_t uid)
{
	struct series *series;

	return series_upsert(ledger, rule, uid, &series);
}

int kh_ledger_note_mint(struct kh_ledger *ledger, const char *rule,
			uid_t uid, int64_t time, double amount)
{
	struct series *series;
	int rc = series_upsert(ledger, rule, uid, &series);

	if (rc)
		return rc;
	return series_add(series, time, amount);
}

/* Start of the window (now - per, now], saturating instead of wrapping. */
static int64_t window_start(int64_t now, int64_t per)
{
	return now < INT64_MIN + per ? INT64_MIN : now - per;
}

uint64_t kh_ledger_rate(const struct kh_ledger *ledger, const char *rule,
			uid_t uid, int64_t now, int64_t per)
{
	const struct series *series = find_series(ledger, rule, uid);

	if (!series || per <= 0)
		return 0;
	return upper_bound(series, now) -
	       upper_bound(series, window_start(now, per));
}

double kh_ledger_budget(const struct kh_ledger *ledger, const char *rule,
			uid_t uid, int64_t now, int64_t per)
{
	const struct series *series = find_series(ledger, rule, uid);
	double sum = 0;

	if (!series || per <= 0)
		return 0;
	for (size_t i = upper_bound(series, window_start(now, per));
	     i < upper_bound(series, now); i++)
		sum += series->events[i].amount;
	return sum;
}

static struct jti_entry *jti_find(const struct kh_ledger *ledger,
				  const char *jti)
{
	struct slot *slot;

	if (!ledger || !jti)
		return NULL;
	slot = map_find(&ledger->jtis, jti, key_hash(ledger, jti));
	return slot ? slot->value : NULL;
}

/* Finds or adds jti's entry, keeping the later of the two exp values. */
static struct jti_entry *jti_upsert(struct kh_ledger *ledger,
				    const char *jti, int64_t exp)
{
	struct jti_entry *entry = jti_find(ledger, jti);

	if (entry) {
		if (exp > entry->exp)
			entry->exp = exp;
		return entry;
	}
	if (!ledger || !jti)
		return NULL;
	entry = calloc(1, sizeof(*entry));
	if (!entry)
		return NULL;
	entry->exp = exp;
	if (map_insert(&ledger->jtis, jti, key_hash(ledger, jti), entry) < 0) {
		free(entry);
		return NULL;
	}
	return entry;
}

int kh_ledger_reserve_jti(struct kh_ledger *ledger, const char *jti,
			  int64_t exp)
{
	if (!ledger || !jti)
		return -EINVAL;
	return jti_upsert(ledger, jti, exp) ? 0 : -ENOMEM;
}

int kh_ledger_count_use(struct kh_ledger *ledger, const char *jti,
			int64_t exp, uint32_t *total)
{
	struct jti_entry *entry;

	*total = 0;
	if (!ledger || !jti)
		return -EINVAL;
	entry = jti_upsert(ledger, jti, exp);
	if (!entry)
		return -ENOMEM;
	if (entry->uses < UINT32_MAX)
		entry->uses++;
	*total = entry->uses;
	return 0;
}

uint32_t kh_ledger_note_use(struct kh_ledger *ledger, const char *jti,
			    int64_t exp)
{
	uint32_t total;

	return kh_ledger_count_use(ledger, jti, exp, &total) == 0 ? total : 0;
}

uint32_t kh_ledger_uses(const struct kh_ledger *ledger, const char *jti)
{
	const struct jti_entry *entry = jti_find(ledger, jti);

	return entry ? entry->uses : 0;
}

int kh_ledger_note_revoke(struct kh_ledger *ledger, const char *jti,
			  int64_t exp)
{
	struct jti_entry *entry;

	if (!ledger || !jti)
		return -EINVAL;
	entry = jti_upsert(ledger, jti, exp);
	if (!entry)
		return -ENOMEM;
	entry->revoked = true;
	return 0;
}

bool kh_ledger_is_revoked(const struct kh_ledger *ledger, const char *jti)
{
	const struct jti_entry *entry = jti_find(ledger, jti);

	return entry && entry->revoked;
}

int kh_ledger_note_decision(struct kh_ledger *ledger, const char *jti,
			    int64_t exp, uint64_t seq, const char *hash)
{
	struct jti_entry *entry;

	if (!ledger || !jti || !hash || strlen(hash) != 64)
		return -EINVAL;
	entry = jti_upsert(ledger, jti, exp);
	if (!entry)
		return -ENOMEM;
	entry->has_decision = true;
	entry->decision_seq = seq;
	memcpy(entry->decision_hash, hash, 65);
	return 0;
}

int kh_ledger_find_decision(const struct kh_ledger *ledger, const char *jti,
			    uint64_t *seq, char hash[65])
{
	const struct jti_entry *entry = jti_find(ledger, jti);

	*seq = 0;
	hash[0] = '\0';
	if (!entry || !entry->has_decision)
		return -ENOENT;
	*seq = entry->decision_seq;
	memcpy(hash, entry->decision_hash, 65);
	return 0;
}

static bool jti_live(const void *value, void *ctx)
{
	const struct jti_entry *entry = value;

	return entry->exp >= *(const int64_t *)ctx;
}

static bool series_live(const void *value, void *ctx)
{
	const struct series *series = value;

	return series->len &&
	       series->events[series->len - 1].time > *(const int64_t *)ctx;
}

/* Drops events at or before cutoff, which no window of max_window contains. */
static void series_trim(struct series *series, int64_t cutoff)
{
	size_t drop = upper_bound(series, cutoff);

	memmove(series->events, series->events + drop,
		(series->len - drop) * sizeof(series->events[0]));
	series->len -= drop;
	if (series->cap > 64 && series->len < series->cap / 4) {
		struct mint_event *events = reallocarray(
			series->events, series->cap / 2,
			sizeof(series->events[0]));

		if (events) {
			series->events = events;
			series->cap /= 2;
		}
	}
}

void kh_ledger_prune(struct kh_ledger *ledger, int64_t now,
		     int64_t max_window)
{
	int64_t cutoff;

	if (!ledger)
		return;
	map_filter(&ledger->jtis, jti_live, jti_free, &now);
	cutoff = window_start(now, max_window > 0 ? max_window : 0);
	map_filter(&ledger->mints, series_live, series_free, &cutoff);
	for (size_t i = 0; i < ledger->mints.cap; i++)
		if (ledger->mints.slots[i].key)
			series_trim(ledger->mints.slots[i].value, cutoff);
}
