/*
 * The DPR log writer: opens audit_dir/dpr.jsonl, checks and repairs its
 * tail, and appends signed, hash-chained records. Every append reaches
 * the disk (fdatasync) before kh_dpr_append returns, because keyholed
 * hands out a permit or a secret only after its record is logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "dpr_internal.h"

#define POLICIES_DIR "policies"

struct kh_dpr {
	pthread_mutex_t lock; /* serialises appends and archiving */
	int dirfd;
	int fd;                     /* dpr.jsonl, O_WRONLY | O_APPEND */
	const struct kh_key *key;   /* borrowed: must outlive the log */
	struct dpr_chain chain;     /* last record written */
	off_t size;                 /* bytes of complete, checked records */
	bool broken;                /* a failed append could not be undone */
};

/* Members that kh_dpr_append sets itself and callers must not pass. */
static const char *const reserved_members[] = {
	"v", "seq", "time", "type", "prev", "hash", "kid", "sig",
};

/* Record types are short lowercase words such as "decision". */
static bool type_is_valid(const char *type)
{
	size_t len = type ? strlen(type) : 0;

	if (len == 0 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((type[i] >= 'a' && type[i] <= 'z') || type[i] == '_'))
			return false;
	}
	return true;
}

static int check_append_args(const char *type, const json_t *fields,
			     struct kh_err *err)
{
	if (!type_is_valid(type)) {
		kh_err_set(err, "record type \"%s\" is invalid; use 1 to 32 "
				"characters from a-z and _",
			   type ? type : "(null)");
		return -EINVAL;
	}
	if (!json_is_object(fields)) {
		kh_err_set(err, "%s record: fields must be a JSON object", type);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(reserved_members) /
				       sizeof(reserved_members[0]); i++) {
		if (json_object_get(fields, reserved_members[i])) {
			kh_err_set(err, "%s record: fields must not contain "
					"\"%s\", which the log sets itself",
				   type, reserved_members[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* Writes all of data, looping on short writes. *done counts the bytes written. */
static int write_all(int fd, const char *data, size_t len, size_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = write(fd, data + *done, len - *done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		*done += (size_t)n;
	}
	return 0;
}

/* Creates dir (0700) when it is missing and opens it. */
static int open_audit_dir(const char *dir, int *dirfd, struct kh_err *err)
{
	int r;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		kh_err_set(err, "cannot create audit directory %s: %s", dir,
			   strerror(-r));
		return r;
	}
	*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0) {
		r = -errno;
		kh_err_set(err, "cannot open audit directory %s: %s", dir,
			   strerror(-r));
		return r;
	}
	return 0;
}

/*
 * Opens dpr.jsonl for appending and takes an exclusive lock on it, so
 * that a second keyholed on the same audit_dir fails instead of
 * interleaving records into one chain.
 */
static int open_log_file(struct kh_dpr *dpr, struct kh_err *err)
{
	struct stat st;
	int r;

	dpr->fd = openat(dpr->dirfd, KH_DPR_FILE,
			 O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			 0600);
	if (dpr->fd < 0) {
		r = -errno;
		kh_err_set(err, "cannot open %s: %s", KH_DPR_FILE,
			   strerror(-r));
		return r;
	}
	if (fstat(dpr->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		kh_err_set(err, "%s is not a regular file", KH_DPR_FILE);
		return -EINVAL;
	}
	if (flock(dpr->fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		kh_err_set(err, "%s is locked by another process; stop the "
				"other keyholed using this audit_dir",
			   KH_DPR_FILE);
		return r;
	}
	/* Makes the directory entry of a newly created log durable. */
	if (fsync(dpr->dirfd) < 0) {
		r = -errno;
		kh_err_set(err, "cannot sync the audit directory: %s",
			   strerror(-r));
		return r;
	}
	return 0;
}

/*
 * Checks every record of the existing log and replays it into ledger.
 * Stops at a torn final line and reports its line number in *torn_line,
 * or 0 when there is none. dpr->size ends just after the last good line.
 */
static int load_log(struct kh_dpr *dpr, const struct dpr_keys *keys,
		    struct kh_ledger *ledger, uint64_t *torn_line,
		    struct kh_err *err)
{
	struct dpr_reader reader = { 0 };
	json_t *record = NULL;
	size_t len;
	bool torn = false;
	int r;

	*torn_line = 0;
	r = kh_dpr_reader_open(&reader, dpr->dirfd, err);
	if (r < 0)
		return r;
	for (;;) {
		r = kh_dpr_reader_next(&reader, &len, err);
		if (r <= 0)
			break;
		r = kh_dpr_check_line(&reader, len, keys, &dpr->chain,
				      &record, &torn, err);
		if (r < 0 && torn) {
			*torn_line = reader.line;
			r = 0;
			break;
		}
		if (r < 0)
			break;
		if (ledger)
			r = kh_dpr_replay(ledger, record, err);
		json_decref(record);
		record = NULL;
		if (r < 0)
			break;
		dpr->size = reader.end;
	}
	kh_dpr_reader_close(&reader);
	return r;
}

/* Current wall-clock time in unix seconds. */
static int64_t now_seconds(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return (int64_t)time(NULL);
	return (int64_t)ts.tv_sec;
}

/* Adds the chain members (all but hash and sig) to a copy of fields. */
static int add_chain_members(const struct kh_dpr *dpr, json_t *record,
			     const char *type)
{
	if (json_object_set_new(record, "v", json_integer(KH_DPR_VERSION)) ||
	    json_object_set_new(record, "seq",
				json_integer((json_int_t)dpr->chain.seq + 1)) ||
	    json_object_set_new(record, "time", json_integer(now_seconds())) ||
	    json_object_set_new(record, "type", json_string(type)) ||
	    json_object_set_new(record, "prev", json_string(dpr->chain.hash)) ||
	    json_object_set_new(record, "kid", json_string(dpr->key->kid)))
		return -ENOMEM;
	return 0;
}

/* Hashes the record so far, then adds hash and its signature as sig. */
static int seal_record(const struct kh_dpr *dpr, json_t *record,
		       char hash[KH_HASH_HEX_LEN + 1], struct kh_err *err)
{
	unsigned char sig[crypto_sign_BYTES];
	char sig_text[sodium_base64_ENCODED_LEN(
		crypto_sign_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	int r;

	r = kh_hash(record, hash, err);
	if (r < 0)
		return r;
	r = kh_key_sign(dpr->key, hash, KH_HASH_HEX_LEN, sig);
	if (r < 0) {
		kh_err_set(err, "cannot sign with the audit key %s: %s",
			   dpr->key->kid, strerror(-r));
		return r;
	}
	sodium_bin2base64(sig_text, sizeof(sig_text), sig, sizeof(sig),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (json_object_set_new(record, "hash", json_string(hash)) ||
	    json_object_set_new(record, "sig", json_string(sig_text)))
		return -ENOMEM;
	return 0;
}

/*
 * Builds the next record as one canonical JSON line ending in "\n".
 * *line is malloc'd, and hash receives the record's hash.
 */
static int build_line(const struct kh_dpr *dpr, const char *type,
		      const json_t *fields, char **line, size_t *len,
		      char hash[KH_HASH_HEX_LEN + 1], struct kh_err *err)
{
	json_t *record = NULL;
	char *text = NULL;
	char *grown;
	size_t text_len = 0;
	int r;

	/* A shallow copy: adding members must not change the caller's object. */
	record = json_copy((json_t *)fields);
	if (!record)
		return -ENOMEM;
	r = add_chain_members(dpr, record, type);
	if (r == 0)
		r = seal_record(dpr, record, hash, err);
	if (r == 0)
		r = kh_canon_dump(record, &text, &text_len, err);
	if (r < 0)
		goto out;

	if (text_len > KH_DPR_RECORD_MAX) {
		kh_err_set(err, "%s record is %zu bytes, above the limit of "
				"%d bytes",
			   type, text_len, KH_DPR_RECORD_MAX);
		r = -E2BIG;
		goto out;
	}
	grown = realloc(text, text_len + 2);
	if (!grown) {
		r = -ENOMEM;
		goto out;
	}
	text = grown;
	text[text_len] = '\n';
	text[text_len + 1] = '\0';
	*line = text;
	*len = text_len + 1;
	text = NULL;
out:
	free(text);
	json_decref(record);
	return r;
}

/*
 * Cuts the file back to the last complete record after a failed append,
 * so that the next append continues a valid chain. When even that
 * fails the log is marked broken and every later append fails.
 */
static void roll_back(struct kh_dpr *dpr)
{
	if (ftruncate(dpr->fd, dpr->size) < 0 || fdatasync(dpr->fd) < 0)
		dpr->broken = true;
}

/* Writes one line and waits for fdatasync, or undoes it on failure. */
static int write_line(struct kh_dpr *dpr, const char *line, size_t len,
		      struct kh_err *err)
{
	size_t done = 0;
	int r;

	r = write_all(dpr->fd, line, len, &done);
	if (r < 0) {
		kh_err_set(err, "cannot write to %s (%zu of %zu bytes "
				"written): %s",
			   KH_DPR_FILE, done, len, strerror(-r));
		if (done > 0)
			roll_back(dpr);
		return r;
	}
	/*
	 * NOTE: tests reach the failed-write path (RLIMIT_FSIZE) but never
	 * make fdatasync or the rollback truncation fail.
	 */
	if (fdatasync(dpr->fd) < 0) {
		r = -errno;
		kh_err_set(err, "cannot sync %s: %s", KH_DPR_FILE,
			   strerror(-r));
		roll_back(dpr);
		return r;
	}
	return 0;
}

/* Appends under the lock, advancing the chain only on success. */
static int append_locked(struct kh_dpr *dpr, const char *type,
			 const json_t *fields, uint64_t *seq,
			 char hash[KH_HASH_HEX_LEN + 1], struct kh_err *err)
{
	char *line = NULL;
	size_t len = 0;
	int r;

	if (dpr->broken) {
		kh_err_set(err, "%s could not be restored after a failed "
				"append, so it takes no more records; restart "
				"keyholed",
			   KH_DPR_FILE);
		return -EIO;
	}
	r = build_line(dpr, type, fields, &line, &len, hash, err);
	if (r < 0)
		goto out;
	r = write_line(dpr, line, len, err);
	if (r < 0)
		goto out;

	dpr->chain.seq++;
	memcpy(dpr->chain.hash, hash, KH_HASH_HEX_LEN + 1);
	dpr->size += (off_t)len;
	*seq = dpr->chain.seq;
out:
	free(line);
	return r;
}

int kh_dpr_append(struct kh_dpr *dpr, const char *type, const json_t *fields,
		  uint64_t *seq_out, char hash_out[KH_HASH_HEX_LEN + 1],
		  struct kh_err *err)
{
	char hash[KH_HASH_HEX_LEN + 1] = "";
	uint64_t seq = 0;
	int r;

	if (seq_out)
		*seq_out = 0;
	if (hash_out)
		hash_out[0] = '\0';
	if (!dpr)
		return -EINVAL;
	r = check_append_args(type, fields, err);
	if (r < 0)
		return r;

	pthread_mutex_lock(&dpr->lock);
	r = append_locked(dpr, type, fields, &seq, hash, err);
	pthread_mutex_unlock(&dpr->lock);
	if (r < 0)
		return r;

	if (seq_out)
		*seq_out = seq;
	if (hash_out)
		memcpy(hash_out, hash, KH_HASH_HEX_LEN + 1);
	return 0;
}

/* Creates dir/policies (0700) when missing and opens it. */
static int open_policies_dir(const struct kh_dpr *dpr, int *out,
			     struct kh_err *err)
{
	int r;

	if (mkdirat(dpr->dirfd, POLICIES_DIR, 0700) == 0) {
		if (fsync(dpr->dirfd) < 0)
			goto fail;
	} else if (errno != EEXIST) {
		goto fail;
	}
	*out = openat(dpr->dirfd, POLICIES_DIR,
		      O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*out >= 0)
		return 0;
fail:
	r = -errno;
	kh_err_set(err, "cannot create or open %s/: %s", POLICIES_DIR,
		   strerror(-r));
	return r;
}

/*
 * Returns 1 when name in dirfd is a regular file containing exactly
 * text, 0 when it is missing or contains something else, or -errno.
 */
static int has_content(int dirfd, const char *name, const char *text,
		       size_t len)
{
	struct stat st;
	char *buf = NULL;
	size_t done = 0;
	int fd;
	int r = 0;

	fd = openat(dirfd, name,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP ? 0 : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size != len)
		goto out;
	buf = malloc(len ? len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		done += (size_t)n;
	}
	r = memcmp(buf, text, len) == 0;
out:
	free(buf);
	close(fd);
	return r;
}

/* Writes text to a temporary file, syncs it and renames it to name. */
static int replace_file(int dirfd, const char *name, const char *text,
			size_t len, struct kh_err *err)
{
	char tmp[KH_HASH_HEX_LEN + 32];
	size_t done = 0;
	int fd;
	int r;

	r = snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dirfd, tmp,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = write_all(fd, text, len, &done);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(dirfd) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
out:
	if (r < 0)
		kh_err_set(err, "cannot write %s/%s: %s", POLICIES_DIR, name,
			   strerror(-r));
	return r;
}

/* Writes the archive under the lock, and only when it is missing or wrong. */
static int archive_locked(struct kh_dpr *dpr, const char *name,
			  const char *text, size_t len, struct kh_err *err)
{
	int pfd = -1;
	int r;

	r = open_policies_dir(dpr, &pfd, err);
	if (r < 0)
		return r;
	r = has_content(pfd, name, text, len);
	if (r == 0)
		r = replace_file(pfd, name, text, len, err);
	else if (r < 0)
		kh_err_set(err, "cannot read %s/%s: %s", POLICIES_DIR, name,
			   strerror(-r));
	close(pfd);
	return r < 0 ? r : 0;
}

int kh_dpr_archive_policy(struct kh_dpr *dpr, const struct kh_policy *policy,
			  struct kh_err *err)
{
	char computed[KH_HASH_HEX_LEN + 1];
	char name[KH_HASH_HEX_LEN + 8];
	const char *hp;
	char *text = NULL;
	size_t len = 0;
	int r;

	if (!dpr || !policy)
		return -EINVAL;
	hp = kh_policy_hash(policy);
	r = kh_canon_dump(kh_policy_json(policy), &text, &len, err);
	if (r < 0)
		return r;

	/* The file name is the hash of the content, so a mismatch is rejected. */
	kh_hash_bytes(text, len, computed);
	if (!hp || strcmp(computed, hp) != 0) {
		kh_err_set(err, "policy hP %s does not match the SHA-256 of "
				"its canonical JSON %s",
			   hp ? hp : "(none)", computed);
		r = -EINVAL;
		goto out;
	}
	(void)snprintf(name, sizeof(name), "%s.json", hp);

	pthread_mutex_lock(&dpr->lock);
	r = archive_locked(dpr, name, text, len, err);
	pthread_mutex_unlock(&dpr->lock);
out:
	free(text);
	return r;
}

/* Cuts a torn final line off and records the cut in a "repair" record. */
static int repair_tail(struct kh_dpr *dpr, uint64_t line,
		       struct kh_err *err)
{
	struct stat st;
	json_t *fields = NULL;
	char reason[128];
	int r;

	if (fstat(dpr->fd, &st) < 0)
		return -errno;
	if (ftruncate(dpr->fd, dpr->size) < 0 || fdatasync(dpr->fd) < 0) {
		r = -errno;
		kh_err_set(err, "cannot cut the torn final line off %s: %s",
			   KH_DPR_FILE, strerror(-r));
		return r;
	}

	(void)snprintf(reason, sizeof(reason),
		       "torn final line %" PRIu64 " cut off at start", line);
	fields = json_pack("{s:I, s:s}", "cut_bytes",
			   (json_int_t)(st.st_size - dpr->size), "reason",
			   reason);
	if (!fields)
		return -ENOMEM;
	r = kh_dpr_append(dpr, "repair", fields, NULL, NULL, err);
	json_decref(fields);
	return r;
}

/*
 * Finds the private key that must sign the next record: the chain's
 * key, among key and retired. Fails when the log was signed by a key
 * whose private half is not at hand, because a record signed by any
 * other key would break the chain for every verifier.
 */
static int find_signer(const struct kh_dpr *dpr, const struct kh_key *key,
		       const struct dpr_keys *retired,
		       const struct kh_key **signer, struct kh_err *err)
{
	const struct kh_key *last = kh_dpr_chain_key(&dpr->chain);

	*signer = key;
	if (!last || strcmp(last->kid, key->kid) == 0)
		return 0;
	for (size_t i = 0; i < retired->count; i++) {
		if (strcmp(last->kid, retired->keys[i]->kid) == 0 &&
		    retired->keys[i]->secret) {
			*signer = retired->keys[i];
			return 0;
		}
	}
	kh_err_set(err, "the log is signed by audit key %s, but the audit "
			"key is %s and the private key %s is not among the "
			"retired keys; restore the old key, or rotate with "
			"keyhole keygen --rotate, which keeps it",
		   last->kid, key->kid, last->kid);
	return -EKEYREJECTED;
}

/*
 * Hands the chain over to key with a "key_rotate" record that the old
 * key signs, so that a verifier holding only the first key can follow
 * the chain to the new one.
 */
static int hand_over(struct kh_dpr *dpr, const struct kh_key *key,
		     struct kh_err *err)
{
	json_t *jwk = NULL, *fields;
	int r;

	r = kh_key_public_jwk(key, &jwk);
	if (r < 0)
		return r;
	fields = json_pack("{s:o}", "key", jwk);
	if (!fields)
		return -ENOMEM;
	r = kh_dpr_append(dpr, "key_rotate", fields, NULL, NULL, err);
	json_decref(fields);
	return r;
}

/* Loads the log, cuts a torn tail and hands over to key if needed. */
static int open_chain(struct kh_dpr *dpr, const struct kh_key *key,
		      const struct dpr_keys *retired,
		      struct kh_ledger *ledger, struct kh_err *err)
{
	const struct kh_key *all[1 + KH_DPR_RETIRED_MAX];
	const struct dpr_keys keys = { all, 1 + retired->count };
	const struct kh_key *signer = NULL;
	uint64_t torn_line = 0;
	int r;

	all[0] = key;
	for (size_t i = 0; i < retired->count; i++)
		all[1 + i] = retired->keys[i];
	r = load_log(dpr, &keys, ledger, &torn_line, err);
	if (r == 0)
		r = find_signer(dpr, key, retired, &signer, err);
	if (r < 0)
		return r;

	dpr->key = signer;
	if (torn_line > 0)
		r = repair_tail(dpr, torn_line, err);
	if (r == 0 && signer != key)
		r = hand_over(dpr, key, err);
	dpr->key = key;

	/* Appends need only seq and hash from here on. */
	kh_dpr_chain_free_keys(&dpr->chain);
	return r;
}

int kh_dpr_open_keys(const char *dir, const struct kh_key *key,
		     const struct kh_key *const *retired, size_t n_retired,
		     struct kh_ledger *ledger, struct kh_dpr **out,
		     struct kh_err *err)
{
	const struct dpr_keys old = { retired, n_retired };
	struct kh_dpr *dpr = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!dir || !key || !key->secret || (n_retired && !retired) ||
	    n_retired > KH_DPR_RETIRED_MAX) {
		kh_err_set(err, "opening the audit log needs a directory, "
				"a private audit key and at most %d retired "
				"keys", KH_DPR_RETIRED_MAX);
		return -EINVAL;
	}
	if (sodium_init() < 0)
		return -EIO;

	dpr = calloc(1, sizeof(*dpr));
	if (!dpr)
		return -ENOMEM;
	dpr->dirfd = -1;
	dpr->fd = -1;
	dpr->key = key;
	kh_dpr_chain_init(&dpr->chain);
	r = pthread_mutex_init(&dpr->lock, NULL);
	if (r != 0) {
		free(dpr);
		return -r;
	}

	r = open_audit_dir(dir, &dpr->dirfd, err);
	if (r == 0)
		r = open_log_file(dpr, err);
	if (r == 0)
		r = open_chain(dpr, key, &old, ledger, err);
	if (r < 0) {
		kh_err_prefix(err, "%s/%s", dir, KH_DPR_FILE);
		kh_dpr_close(dpr);
		return r;
	}
	*out = dpr;
	return 0;
}

int kh_dpr_open(const char *dir, const struct kh_key *key,
		struct kh_ledger *ledger, struct kh_dpr **out,
		struct kh_err *err)
{
	return kh_dpr_open_keys(dir, key, NULL, 0, ledger, out, err);
}

void kh_dpr_close(struct kh_dpr *dpr)
{
	if (!dpr)
		return;
	if (dpr->fd >= 0)
		close(dpr->fd);
	if (dpr->dirfd >= 0)
		close(dpr->dirfd);
	kh_dpr_chain_free_keys(&dpr->chain);
	pthread_mutex_destroy(&dpr->lock);
	free(dpr);
}
