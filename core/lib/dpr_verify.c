/*
 * Reading the DPR log: the line reader, the per-record checks shared
 * with kh_dpr_open, offline verification against a pinned public key,
 * and iteration for "keyhole audit show".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dpr_internal.h"

void kh_dpr_chain_init(struct dpr_chain *chain)
{
	chain->seq = 0;
	memset(chain->hash, '0', KH_HASH_HEX_LEN);
	chain->hash[KH_HASH_HEX_LEN] = '\0';
	chain->base = NULL;
	chain->handed = NULL;
	chain->rotations = 0;
}

void kh_dpr_chain_free(struct dpr_chain *chain)
{
	kh_key_free(chain->handed);
	kh_dpr_chain_init(chain);
}

void kh_dpr_chain_free_keys(struct dpr_chain *chain)
{
	kh_key_free(chain->handed);
	chain->handed = NULL;
	chain->base = NULL;
}

const struct kh_key *kh_dpr_chain_key(const struct dpr_chain *chain)
{
	return chain->handed ? chain->handed : chain->base;
}

int kh_dpr_reader_open(struct dpr_reader *reader, int dirfd,
		       struct kh_err *err)
{
	struct stat st;
	int fd;
	int r;

	memset(reader, 0, sizeof(*reader));
	/* O_NONBLOCK keeps a FIFO in place of the log from blocking us. */
	fd = openat(dirfd, KH_DPR_FILE,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		kh_err_set(err, "cannot open %s: %s", KH_DPR_FILE,
			   strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		kh_err_set(err, "%s is not a regular file", KH_DPR_FILE);
		return -EINVAL;
	}
	reader->file = fdopen(fd, "r");
	if (!reader->file) {
		r = -errno;
		close(fd);
		kh_err_set(err, "cannot read %s: %s", KH_DPR_FILE,
			   strerror(-r));
		return r;
	}
	return 0;
}

int kh_dpr_reader_next(struct dpr_reader *reader, size_t *len,
		       struct kh_err *err)
{
	ssize_t n;
	int c;

	*len = 0;
	errno = 0;
	n = getline(&reader->buf, &reader->cap, reader->file);
	if (n < 0) {
		if (!ferror(reader->file))
			return 0;
		kh_err_set(err, "cannot read %s after line %" PRIu64 ": %s",
			   KH_DPR_FILE, reader->line, strerror(errno));
		return errno ? -errno : -EIO;
	}

	reader->line++;
	reader->start = reader->end;
	reader->end += n;
	reader->complete = reader->buf[n - 1] == '\n';
	if (reader->complete)
		reader->buf[--n] = '\0';

	/* Peek one byte so that callers can tell the final line apart. */
	c = getc(reader->file);
	reader->final = c == EOF;
	if (c != EOF)
		(void)ungetc(c, reader->file);
	*len = (size_t)n;
	return 1;
}

void kh_dpr_reader_close(struct dpr_reader *reader)
{
	if (reader->file)
		(void)fclose(reader->file);
	free(reader->buf);
	memset(reader, 0, sizeof(*reader));
}

int kh_dpr_parse_line(const char *line, size_t len, uint64_t line_no,
		      json_t **record, bool *not_json, struct kh_err *err)
{
	struct kh_err detail;
	json_t *value = NULL;
	char *canon = NULL;
	size_t canon_len = 0;
	int r;

	*record = NULL;
	*not_json = false;
	if (len > KH_DPR_RECORD_MAX) {
		kh_err_set(err, "line %" PRIu64 ": longer than %d bytes",
			   line_no, KH_DPR_RECORD_MAX);
		return -EBADMSG;
	}

	kh_err_clear(&detail);
	r = kh_json_parse(line, len, &value, &detail);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		*not_json = true;
		kh_err_set(err, "line %" PRIu64 ": not canonical JSON (%s)",
			   line_no, detail.msg);
		return -EBADMSG;
	}

	r = kh_canon_dump(value, &canon, &canon_len, NULL);
	if (r == -ENOMEM)
		goto out;
	if (r < 0 || canon_len != len || memcmp(canon, line, len) != 0) {
		kh_err_set(err, "line %" PRIu64 ": not canonical JSON", line_no);
		r = -EBADMSG;
		goto out;
	}
	*record = value;
	value = NULL;
out:
	free(canon);
	json_decref(value);
	return r;
}

/* Checks that member key of record exists with the expected JSON type. */
static bool has_member(const json_t *record, const char *key, json_type type)
{
	const json_t *value = json_object_get(record, key);

	return value && json_typeof(value) == type;
}

/* Checks v, seq and the presence and type of every chain member. */
static int check_header(const json_t *record, uint64_t expected,
			struct kh_err *err)
{
	static const struct {
		const char *key;
		json_type type;
	} members[] = {
		{ "time", JSON_INTEGER }, { "type", JSON_STRING },
		{ "prev", JSON_STRING },  { "hash", JSON_STRING },
		{ "kid", JSON_STRING },   { "sig", JSON_STRING },
	};
	const json_t *seq = json_object_get(record, "seq");
	const json_t *v = json_object_get(record, "v");

	if (!json_is_object(record) || !json_is_integer(seq)) {
		kh_err_set(err, "seq %" PRIu64 ": record has no integer seq",
			   expected);
		return -EBADMSG;
	}
	if (json_integer_value(seq) < 0 ||
	    (uint64_t)json_integer_value(seq) != expected) {
		kh_err_set(err, "seq %" PRIu64 ": expected seq %" PRIu64
				" but found %" JSON_INTEGER_FORMAT,
			   expected, expected, json_integer_value(seq));
		return -EBADMSG;
	}
	if (!json_is_integer(v) || json_integer_value(v) != KH_DPR_VERSION) {
		kh_err_set(err, "seq %" PRIu64 ": unsupported record version; "
				"this build reads v=%d",
			   expected, KH_DPR_VERSION);
		return -EBADMSG;
	}
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		if (!has_member(record, members[i].key, members[i].type)) {
			kh_err_set(err, "seq %" PRIu64 ": member \"%s\" is "
					"missing or has the wrong type",
				   expected, members[i].key);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Checks prev against the chain and recomputes hash. */
static int check_hash(const json_t *record, const struct dpr_chain *chain,
		      uint64_t seq, struct kh_err *err)
{
	const char *prev = json_string_value(json_object_get(record, "prev"));
	const char *hash = json_string_value(json_object_get(record, "hash"));
	char computed[KH_HASH_HEX_LEN + 1];
	json_t *body = NULL;
	int r;

	if (strcmp(prev, chain->hash) != 0) {
		if (seq == 1)
			kh_err_set(err, "seq 1: prev is not 64 zeros");
		else
			kh_err_set(err, "seq %" PRIu64 ": prev does not match "
					"seq %" PRIu64,
				   seq, chain->seq);
		return -EBADMSG;
	}

	/* The hash covers every member except hash and sig, so kid is covered. */
	body = json_copy((json_t *)record);
	if (!body)
		return -ENOMEM;
	if (json_object_del(body, "hash") < 0 ||
	    json_object_del(body, "sig") < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = kh_hash(body, computed, NULL);
	if (r == -ENOMEM)
		goto out;
	if (r < 0 || !kh_hash_is_valid(hash) || strcmp(computed, hash) != 0) {
		kh_err_set(err, "seq %" PRIu64 ": hash mismatch", seq);
		r = -EBADMSG;
		goto out;
	}
	r = 0;
out:
	json_decref(body);
	return r;
}

/*
 * Picks the key that must have signed the record after chain: for seq
 * 1 the one of keys with the record's kid, else the chain's key.
 */
static int pick_key(const json_t *record, const struct dpr_keys *keys,
		    const struct dpr_chain *chain, const struct kh_key **key,
		    struct kh_err *err)
{
	const char *kid = json_string_value(json_object_get(record, "kid"));
	uint64_t seq = chain->seq + 1;

	*key = kh_dpr_chain_key(chain);
	if (*key) {
		if (strcmp(kid, (*key)->kid) == 0)
			return 0;
		kh_err_set(err, "seq %" PRIu64 ": signed with kid %s, but the "
				"chain's audit key has kid %s",
			   seq, kid, (*key)->kid);
		return -EBADMSG;
	}
	for (size_t i = 0; i < keys->count; i++) {
		if (strcmp(kid, keys->keys[i]->kid) == 0) {
			*key = keys->keys[i];
			return 0;
		}
	}
	if (keys->count == 1)
		kh_err_set(err, "seq %" PRIu64 ": signed with kid %s, but the "
				"audit key has kid %s",
			   seq, kid, keys->keys[0]->kid);
	else
		kh_err_set(err, "seq %" PRIu64 ": signed with kid %s, which "
				"none of the %zu audit keys has",
			   seq, kid, keys->count);
	return -EBADMSG;
}

/* Checks the Ed25519 signature over the 64 hex digits of hash. */
static int check_signature(const json_t *record, const struct kh_key *key,
			   uint64_t seq, struct kh_err *err)
{
	const char *hash = json_string_value(json_object_get(record, "hash"));
	const char *text = json_string_value(json_object_get(record, "sig"));
	unsigned char sig[crypto_sign_BYTES];
	size_t sig_len = 0;
	const char *end = NULL;

	if (sodium_base642bin(sig, sizeof(sig), text, strlen(text), NULL,
			      &sig_len, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    *end != '\0' || sig_len != sizeof(sig)) {
		kh_err_set(err, "seq %" PRIu64 ": sig is not a base64url "
				"Ed25519 signature",
			   seq);
		return -EBADMSG;
	}
	if (kh_key_verify(key, hash, KH_HASH_HEX_LEN, sig) != 0) {
		kh_err_set(err, "seq %" PRIu64 ": bad signature", seq);
		return -EBADMSG;
	}
	return 0;
}

/*
 * Takes the key that a valid "key_rotate" record carries as the key of
 * the records after it. The record itself is signed by the old key, so
 * the chain of keys leads back to the key that signed seq 1.
 */
static int follow_rotation(const json_t *record, struct dpr_chain *chain,
			   uint64_t seq, struct kh_err *err)
{
	struct kh_key *next = NULL;
	int r;

	if (!json_is_string(json_object_get(record, "type")) ||
	    strcmp(json_string_value(json_object_get(record, "type")),
		   "key_rotate") != 0)
		return 0;
	r = kh_key_from_public_jwk(json_object_get(record, "key"), &next,
				   err);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		kh_err_prefix(err, "seq %" PRIu64 ": key_rotate", seq);
		return -EBADMSG;
	}
	kh_key_free(chain->handed);
	chain->handed = next;
	chain->rotations++;
	return 0;
}

int kh_dpr_check_line(const struct dpr_reader *reader, size_t len,
		      const struct dpr_keys *keys, struct dpr_chain *chain,
		      json_t **record, bool *torn, struct kh_err *err)
{
	const struct kh_key *key = NULL;
	const char *hash;
	json_t *value = NULL;
	bool not_json = false;
	uint64_t seq = chain->seq + 1;
	int r;

	*torn = false;
	if (record)
		*record = NULL;
	if (!reader->complete) {
		*torn = true;
		kh_err_set(err, "line %" PRIu64 ": torn final line (no "
				"newline at the end of the file)",
			   reader->line);
		return -EBADMSG;
	}
	r = kh_dpr_parse_line(reader->buf, len, reader->line, &value,
			      &not_json, err);
	if (r < 0) {
		*torn = r == -EBADMSG && not_json && reader->final;
		if (*torn)
			kh_err_prefix(err, "torn final line");
		return r;
	}

	r = check_header(value, seq, err);
	if (r == 0)
		r = check_hash(value, chain, seq, err);
	if (r == 0)
		r = pick_key(value, keys, chain, &key, err);
	if (r == 0)
		r = check_signature(value, key, seq, err);
	if (r == 0)
		r = follow_rotation(value, chain, seq, err);
	if (r < 0)
		goto out;

	/* The first record checked fixes the key, also mid-log (a tail). */
	if (!kh_dpr_chain_key(chain))
		chain->base = key;
	hash = json_string_value(json_object_get(value, "hash"));
	chain->seq = seq;
	memcpy(chain->hash, hash, KH_HASH_HEX_LEN + 1);
	if (record) {
		*record = value;
		value = NULL;
	}
out:
	json_decref(value);
	return r;
}

/* Opens dir as a directory fd for reading the log. */
static int open_log_dir(const char *dir, int *dirfd, struct kh_err *err)
{
	int r;

	*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0) {
		r = -errno;
		kh_err_set(err, "cannot open audit directory %s: %s", dir,
			   strerror(-r));
		return r;
	}
	return 0;
}

int kh_dpr_verify(const char *dir, const struct kh_key *key,
		  struct kh_dpr_report *report, struct kh_err *err)
{
	struct dpr_reader reader = { 0 };
	const struct kh_key *pinned[1] = { key };
	const struct dpr_keys keys = { pinned, 1 };
	struct dpr_chain chain;
	int dirfd = -1;
	size_t len;
	bool torn;
	int r;

	if (!report)
		return -EINVAL;
	memset(report, 0, sizeof(*report));
	kh_dpr_chain_init(&chain);
	if (!dir || !key)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;

	r = open_log_dir(dir, &dirfd, err);
	if (r < 0)
		return r;
	r = kh_dpr_reader_open(&reader, dirfd, err);
	if (r < 0)
		goto out;

	for (;;) {
		r = kh_dpr_reader_next(&reader, &len, err);
		if (r <= 0)
			break;
		r = kh_dpr_check_line(&reader, len, &keys, &chain, NULL,
				      &torn, err);
		if (r == -EBADMSG) {
			report->bad_seq = chain.seq + 1;
			report->bad_line = reader.line;
			r = 1;
			goto out;
		}
		if (r < 0)
			goto out;
		report->records++;
		report->rotations = chain.rotations;
	}
out:
	if (r < 0)
		kh_err_prefix(err, "%s", dir);
	kh_dpr_chain_free(&chain);
	kh_dpr_reader_close(&reader);
	close(dirfd);
	return r;
}

int kh_dpr_foreach(const char *dir, kh_dpr_visit_fn fn, void *ctx,
		   struct kh_err *err)
{
	struct dpr_reader reader = { 0 };
	json_t *record = NULL;
	int dirfd = -1;
	bool not_json;
	size_t len;
	int r;

	if (!dir || !fn)
		return -EINVAL;
	r = open_log_dir(dir, &dirfd, err);
	if (r < 0)
		return r;
	r = kh_dpr_reader_open(&reader, dirfd, err);
	if (r < 0)
		goto out;

	for (;;) {
		r = kh_dpr_reader_next(&reader, &len, err);
		if (r <= 0)
			break;
		/* An append in progress (or a torn tail) is not logged yet. */
		if (!reader.complete) {
			r = 0;
			break;
		}
		r = kh_dpr_parse_line(reader.buf, len, reader.line, &record,
				      &not_json, err);
		if (r < 0)
			goto out;
		r = fn(record, ctx);
		json_decref(record);
		record = NULL;
		/* fn's value goes back as it is, without a prefix on err. */
		if (r != 0)
			goto done;
	}
out:
	if (r < 0)
		kh_err_prefix(err, "%s", dir);
done:
	kh_dpr_reader_close(&reader);
	close(dirfd);
	return r;
}

/*
 * Finds the last count complete lines of fd by reading backwards from
 * the end: they run from *start to *end, just past the last newline.
 * Reading backwards keeps the cost at the tail's size, not the log's.
 */
static int find_tail(int fd, uint64_t count, off_t *start, off_t *end)
{
	char buf[16384];
	struct stat st;
	uint64_t newlines = 0;
	off_t pos;

	*start = 0;
	*end = 0;
	if (fstat(fd, &st) < 0)
		return -errno;

	pos = st.st_size;
	while (pos > 0) {
		size_t n = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);
		ssize_t got = pread(fd, buf, n, pos - (off_t)n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		/* kh_dpr_open cut a torn line off while we read. */
		if ((size_t)got != n)
			return -EAGAIN;
		pos -= (off_t)n;
		for (size_t i = n; i-- > 0;) {
			if (buf[i] != '\n')
				continue;
			if (++newlines == 1)
				*end = pos + (off_t)i + 1;
			if (newlines == count + 1) {
				*start = pos + (off_t)i + 1;
				return 0;
			}
		}
	}
	return 0;
}

/*
 * Sets chain to what the first record of the tail links to, taken from
 * the record itself: seq - 1 and its prev. For seq 1 the chain starts
 * from 64 zeros, as kh_dpr_verify starts it.
 */
static int seed_chain(const struct dpr_reader *reader, size_t len,
		      struct dpr_chain *chain, struct kh_err *err)
{
	const json_t *seq, *prev;
	json_t *record = NULL;
	bool not_json;
	int r;

	kh_dpr_chain_init(chain);
	r = kh_dpr_parse_line(reader->buf, len, reader->line, &record,
			      &not_json, err);
	if (r < 0)
		return r;

	seq = json_object_get(record, "seq");
	prev = json_object_get(record, "prev");
	if (!json_is_integer(seq) || json_integer_value(seq) < 1 ||
	    !kh_hash_is_valid(json_string_value(prev))) {
		kh_err_set(err, "record at byte %lld has no valid seq or prev",
			   (long long)reader->start);
		r = -EBADMSG;
		goto out;
	}
	if (json_integer_value(seq) > 1) {
		chain->seq = (uint64_t)json_integer_value(seq) - 1;
		memcpy(chain->hash, json_string_value(prev),
		       KH_HASH_HEX_LEN + 1);
	}
out:
	json_decref(record);
	return r;
}

/* Checks the current line as the next record and records it in report. */
static int check_tail_line(const struct dpr_reader *reader, size_t len,
			   const struct dpr_keys *keys, struct dpr_chain *chain,
			   struct kh_dpr_tail_report *report,
			   struct kh_err *err)
{
	json_t *record = NULL;
	bool torn;
	int r;

	if (report->records == 0) {
		r = seed_chain(reader, len, chain, err);
		if (r < 0)
			return r;
		report->first_seq = chain->seq + 1;
	}
	r = kh_dpr_check_line(reader, len, keys, chain, &record, &torn, err);
	if (r < 0)
		return r;

	report->records++;
	report->last_seq = chain->seq;
	report->last_time = json_integer_value(json_object_get(record, "time"));
	json_decref(record);
	return 0;
}

int kh_dpr_verify_tail(const char *dir, const struct kh_key *key,
		       uint64_t count, struct kh_dpr_tail_report *report,
		       struct kh_err *err)
{
	const struct kh_key *keys[1] = { key };

	return kh_dpr_verify_tail_keys(dir, keys, 1, count, report, err);
}

int kh_dpr_verify_tail_keys(const char *dir,
			    const struct kh_key *const *keys, size_t n_keys,
			    uint64_t count, struct kh_dpr_tail_report *report,
			    struct kh_err *err)
{
	const struct dpr_keys key_set = { keys, n_keys };
	struct dpr_reader reader = { 0 };
	struct dpr_chain chain;
	off_t start, end;
	int dirfd = -1;
	size_t len;
	int r;

	if (!report)
		return -EINVAL;
	memset(report, 0, sizeof(*report));
	kh_dpr_chain_init(&chain);
	if (!dir || !keys || n_keys == 0 || count == 0)
		return -EINVAL;
	for (size_t i = 0; i < n_keys; i++) {
		if (!keys[i])
			return -EINVAL;
	}
	if (sodium_init() < 0)
		return -EIO;

	r = open_log_dir(dir, &dirfd, err);
	if (r < 0)
		return r;
	r = kh_dpr_reader_open(&reader, dirfd, err);
	if (r < 0)
		goto out;
	r = find_tail(fileno(reader.file), count, &start, &end);
	if (r == 0 && fseeko(reader.file, start, SEEK_SET) < 0)
		r = -errno;
	if (r < 0) {
		kh_err_set(err, "cannot read %s: %s", KH_DPR_FILE,
			   strerror(-r));
		goto out;
	}

	reader.start = reader.end = start;
	for (;;) {
		r = kh_dpr_reader_next(&reader, &len, err);
		/* Lines appended after find_tail are left for the next run. */
		if (r <= 0 || reader.start >= end)
			break;
		r = check_tail_line(&reader, len, &key_set, &chain, report,
				    err);
		if (r == -EBADMSG) {
			report->bad_seq = report->first_seq ? chain.seq + 1 : 0;
			report->bad_offset = (uint64_t)reader.start;
			r = 1;
			goto out;
		}
		if (r < 0)
			goto out;
	}
	r = r < 0 ? r : 0;
out:
	if (r < 0)
		kh_err_prefix(err, "%s", dir);
	kh_dpr_chain_free(&chain);
	kh_dpr_reader_close(&reader);
	if (dirfd >= 0)
		close(dirfd);
	return r;
}
