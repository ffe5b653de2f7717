/*
 * Ed25519 JWK keys: generation, signing, the RFC 8037 Appendix A
 * known-answer vector, saving with safe modes, and the checks that
 * kh_key_load applies to files and to JWK members.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/canon.h"
#include "keyhole/key.h"

/* RFC 8037 Appendix A.1: the Ed25519 private key "d" and public "x". */
#define RFC_D "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
#define RFC_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
/* RFC 8037 Appendix A.3: the RFC 7638 thumbprint of that key. */
#define RFC_KID "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
/* RFC 8037 Appendix A.4: the JWS signing input and its signature. */
#define RFC_INPUT "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
#define RFC_SIG                                                            \
	"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5Bh" \
	"VsPt9g7sVvpAr_MuM0KAg"

#define RFC_PRIVATE_JWK                                                    \
	"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"" RFC_D "\",\"x\":\"" \
	RFC_X "\"}"
#define RFC_PUBLIC_JWK                                                     \
	"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

static char tmp_dir[PATH_MAX];

/* Builds the path tmp_dir/name into out. */
static void tmp_path(char *out, size_t size, const char *name)
{
	int n = snprintf(out, size, "%s/%s", tmp_dir, name);

	if (n < 0 || (size_t)n >= size)
		kh_test_fail(__FILE__, __LINE__, "path too long for %s", name);
}

/* Creates (or replaces) name in the temp dir with text and an exact mode. */
static void write_file(const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	tmp_path(path, sizeof(path), name);
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	/* fchmod gives the exact mode whatever the umask is. */
	CHECK(fchmod(fd, mode) == 0);
	CHECK(close(fd) == 0);
}

/* Reads name from the temp dir into buf as a string. */
static void read_file(const char *name, char *buf, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	tmp_path(path, sizeof(path), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	n = read(fd, buf, size - 1);
	CHECK(n >= 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

static int load_file(const char *name, struct kh_key **key,
		     struct kh_err *err)
{
	char path[PATH_MAX];

	tmp_path(path, sizeof(path), name);
	return kh_key_load(path, key, err);
}

static void test_generate_sign_verify(void)
{
	struct kh_key *key = NULL;
	struct kh_err err = {{0}};
	unsigned char sig[64];
	const char data[] = "signed bytes";

	CHECK_INT(kh_key_generate(&key, &err), 0);
	if (!key)
		return;
	CHECK(key->secret != NULL);
	CHECK_INT(strlen(key->kid), KH_KID_LEN);

	CHECK_INT(kh_key_sign(key, data, sizeof(data), sig), 0);
	CHECK_INT(kh_key_verify(key, data, sizeof(data), sig), 0);
	CHECK_INT(kh_key_verify(key, data, sizeof(data) - 1, sig), -EBADMSG);
	sig[0] ^= 0x01;
	CHECK_INT(kh_key_verify(key, data, sizeof(data), sig), -EBADMSG);
	kh_key_free(key);
}

static void test_generate_distinct_keys(void)
{
	struct kh_key *a = NULL, *b = NULL;

	CHECK_INT(kh_key_generate(&a, NULL), 0);
	CHECK_INT(kh_key_generate(&b, NULL), 0);
	if (a && b) {
		CHECK(memcmp(a->public_key, b->public_key, 32) != 0);
		CHECK(strcmp(a->kid, b->kid) != 0);
	}
	kh_key_free(a);
	kh_key_free(b);
}

/* RFC 8037 A.1 to A.4: kid and signature must match byte for byte. */
static void test_rfc8037_private_vector(void)
{
	struct kh_key *key = NULL;
	struct kh_err err = {{0}};
	unsigned char sig[64];
	char sig_b64[sodium_base64_ENCODED_LEN(64, B64URL)];

	write_file("rfc.jwk", RFC_PRIVATE_JWK, 0600);
	CHECK_INT(load_file("rfc.jwk", &key, &err), 0);
	if (!key) {
		kh_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
		return;
	}
	CHECK_STR(key->kid, RFC_KID);
	CHECK(key->secret != NULL);

	CHECK_INT(kh_key_sign(key, RFC_INPUT, strlen(RFC_INPUT), sig), 0);
	sodium_bin2base64(sig_b64, sizeof(sig_b64), sig, sizeof(sig), B64URL);
	CHECK_STR(sig_b64, RFC_SIG);
	CHECK_INT(kh_key_verify(key, RFC_INPUT, strlen(RFC_INPUT), sig), 0);
	kh_key_free(key);
}

static void test_rfc8037_public_vector(void)
{
	struct kh_key *key = NULL;
	struct kh_err err = {{0}};
	unsigned char sig[64];
	size_t sig_len = 0;

	write_file("rfc.pub.jwk", RFC_PUBLIC_JWK, 0644);
	CHECK_INT(load_file("rfc.pub.jwk", &key, &err), 0);
	if (!key) {
		kh_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
		return;
	}
	CHECK_STR(key->kid, RFC_KID);
	CHECK(key->secret == NULL);
	CHECK_INT(kh_key_sign(key, "x", 1, sig), -EPERM);

	CHECK_INT(sodium_base642bin(sig, sizeof(sig), RFC_SIG, strlen(RFC_SIG),
				    NULL, &sig_len, NULL, B64URL),
		  0);
	CHECK_INT(kh_key_verify(key, RFC_INPUT, strlen(RFC_INPUT), sig), 0);
	CHECK_INT(kh_key_verify(key, RFC_INPUT, strlen(RFC_INPUT) - 1, sig),
		  -EBADMSG);
	kh_key_free(key);
}

static void test_public_jwk_members(void)
{
	struct kh_key *key = NULL;
	json_t *jwk = NULL;
	char *text = NULL;

	write_file("rfc.jwk", RFC_PRIVATE_JWK, 0600);
	CHECK_INT(load_file("rfc.jwk", &key, NULL), 0);
	if (!key)
		return;
	CHECK_INT(kh_key_public_jwk(key, &jwk), 0);
	CHECK_INT(kh_canon_dump(jwk, &text, NULL, NULL), 0);
	CHECK_STR(text, "{\"crv\":\"Ed25519\",\"kid\":\"" RFC_KID
			"\",\"kty\":\"OKP\",\"x\":\"" RFC_X "\"}");
	free(text);
	json_decref(jwk);
	kh_key_free(key);
}

/* Saved files are canonical JWKs with mode 0600 and 0644. */
static void test_save_known_answer(void)
{
	struct kh_key *key = NULL;
	char private_path[PATH_MAX], public_path[PATH_MAX], text[1024];
	struct kh_err err = {{0}};
	struct stat st;

	write_file("rfc.jwk", RFC_PRIVATE_JWK, 0600);
	CHECK_INT(load_file("rfc.jwk", &key, NULL), 0);
	if (!key)
		return;
	tmp_path(private_path, sizeof(private_path), "saved.jwk");
	tmp_path(public_path, sizeof(public_path), "saved.pub.jwk");
	(void)unlink(private_path);
	(void)unlink(public_path);

	CHECK_INT(kh_key_save(key, private_path, public_path, &err), 0);
	read_file("saved.jwk", text, sizeof(text));
	CHECK_STR(text, "{\"crv\":\"Ed25519\",\"d\":\"" RFC_D "\",\"kid\":\""
			RFC_KID "\",\"kty\":\"OKP\",\"x\":\"" RFC_X "\"}\n");
	read_file("saved.pub.jwk", text, sizeof(text));
	CHECK_STR(text, "{\"crv\":\"Ed25519\",\"kid\":\"" RFC_KID
			"\",\"kty\":\"OKP\",\"x\":\"" RFC_X "\"}\n");

	CHECK_INT(stat(private_path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(stat(public_path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
	kh_key_free(key);
}

static void test_save_load_round_trip(void)
{
	struct kh_key *key = NULL, *private_key = NULL, *public_key = NULL;
	char private_path[PATH_MAX], public_path[PATH_MAX];
	struct kh_err err = {{0}};
	unsigned char sig[64];

	CHECK_INT(kh_key_generate(&key, NULL), 0);
	if (!key)
		return;
	tmp_path(private_path, sizeof(private_path), "round.jwk");
	tmp_path(public_path, sizeof(public_path), "round.pub.jwk");
	(void)unlink(private_path);
	(void)unlink(public_path);
	CHECK_INT(kh_key_save(key, private_path, public_path, &err), 0);

	CHECK_INT(kh_key_load(private_path, &private_key, &err), 0);
	CHECK_INT(kh_key_load(public_path, &public_key, &err), 0);
	if (private_key && public_key) {
		CHECK_STR(private_key->kid, key->kid);
		CHECK_STR(public_key->kid, key->kid);
		CHECK(public_key->secret == NULL);
		CHECK_INT(kh_key_sign(private_key, "m", 1, sig), 0);
		CHECK_INT(kh_key_verify(key, "m", 1, sig), 0);
		CHECK_INT(kh_key_verify(public_key, "m", 1, sig), 0);
	}
	kh_key_free(public_key);
	kh_key_free(private_key);
	kh_key_free(key);
}

/* kh_key_save keeps an existing file and removes a half-written pair. */
static void test_save_keeps_existing_files(void)
{
	struct kh_key *key = NULL;
	char private_path[PATH_MAX], public_path[PATH_MAX], text[64];
	struct kh_err err = {{0}};

	CHECK_INT(kh_key_generate(&key, NULL), 0);
	if (!key)
		return;
	tmp_path(private_path, sizeof(private_path), "exists.jwk");
	tmp_path(public_path, sizeof(public_path), "exists.pub.jwk");

	write_file("exists.jwk", "old private", 0600);
	(void)unlink(public_path);
	CHECK_INT(kh_key_save(key, private_path, public_path, &err), -EEXIST);
	read_file("exists.jwk", text, sizeof(text));
	CHECK_STR(text, "old private");
	CHECK(access(public_path, F_OK) != 0);

	(void)unlink(private_path);
	write_file("exists.pub.jwk", "old public", 0644);
	CHECK_INT(kh_key_save(key, private_path, public_path, &err), -EEXIST);
	CHECK(access(private_path, F_OK) != 0);
	read_file("exists.pub.jwk", text, sizeof(text));
	CHECK_STR(text, "old public");

	CHECK_INT(kh_key_save(key, NULL, public_path, &err), -EINVAL);
	kh_key_free(key);
}

static const struct {
	const char *name;
	const char *jwk;
} bad_jwks[] = {
	{"not an object", "[\"" RFC_X "\"]"},
	{"kty missing", "{\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}"},
	{"kty EC", "{\"kty\":\"EC\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X "\"}"},
	{"crv X25519", "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"" RFC_X
		       "\"}"},
	{"unknown member", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\""
			   RFC_X "\",\"key_ops\":[\"sign\"]}"},
	{"duplicate member", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\""
			     RFC_X "\",\"x\":\"" RFC_X "\"}"},
	{"use enc", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"enc\","
		    "\"x\":\"" RFC_X "\"}"},
	{"alg RS256", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"RS256\","
		      "\"x\":\"" RFC_X "\"}"},
	{"kid mismatch", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X
			 "\",\"kid\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"},
	{"x number", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":32}"},
	{"x 3 bytes", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}"},
	{"x 33 bytes", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
		       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"},
	{"x padded", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"" RFC_X
		     "=\"}"},
	{"x standard base64", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
			      "\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"},
	{"x trailing bits", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
			    "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp\"}"},
	{"d 3 bytes", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"AAAA\","
		      "\"x\":\"" RFC_X "\"}"},
	{"d of another key", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":"
			     "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
			     "\"x\":\"" RFC_X "\"}"},
	{"d number", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":1,\"x\":\""
		     RFC_X "\"}"},
	{"trailing data", RFC_PUBLIC_JWK "{}"},
	{"seed as member name", "{\"kty\":\"OKP\",\"d\" \"" RFC_D "\"}"},
	{"seed after syntax error", "{\"d\":\"" RFC_D "\" \"" RFC_D "\"}"},
};

static void test_load_rejects_bad_jwk(void)
{
	for (size_t i = 0; i < sizeof(bad_jwks) / sizeof(bad_jwks[0]); i++) {
		/* A non-NULL start shows that a failed load clears *out. */
		static struct kh_key sentinel;
		struct kh_key *key = &sentinel;
		struct kh_err err = {{0}};
		int rc;

		write_file("bad.jwk", bad_jwks[i].jwk, 0600);
		rc = load_file("bad.jwk", &key, &err);
		if (rc != -EINVAL || key != NULL || err.msg[0] == '\0')
			kh_test_fail(__FILE__, __LINE__,
				     "%s: rc %d, key %p, message \"%s\"",
				     bad_jwks[i].name, rc, (void *)key,
				     err.msg);
		if (strstr(err.msg, RFC_D))
			kh_test_fail(__FILE__, __LINE__,
				     "%s: message shows the seed",
				     bad_jwks[i].name);
		if (key != &sentinel)
			kh_key_free(key);
	}
}

static void test_load_accepts_optional_members(void)
{
	struct kh_key *key = NULL;
	struct kh_err err = {{0}};

	write_file("optional.jwk",
		   "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"sig\","
		   "\"alg\":\"EdDSA\",\"kid\":\"" RFC_KID "\",\"x\":\"" RFC_X
		   "\"}\n",
		   0644);
	CHECK_INT(load_file("optional.jwk", &key, &err), 0);
	if (key)
		CHECK_STR(key->kid, RFC_KID);
	kh_key_free(key);
}

enum file_kind { FILE_PLAIN, FILE_SYMLINK, FILE_DIR, FILE_MISSING };

static const struct {
	const char *name;
	enum file_kind kind;
	const char *jwk;
	mode_t mode;
	uid_t owner;
	int rc;
} file_cases[] = {
	{"private 0600", FILE_PLAIN, RFC_PRIVATE_JWK, 0600, 0, 0},
	{"private 0400", FILE_PLAIN, RFC_PRIVATE_JWK, 0400, 0, 0},
	{"private 0640", FILE_PLAIN, RFC_PRIVATE_JWK, 0640, 0, -EPERM},
	{"private 0604", FILE_PLAIN, RFC_PRIVATE_JWK, 0604, 0, -EPERM},
	{"private 0610", FILE_PLAIN, RFC_PRIVATE_JWK, 0610, 0, -EPERM},
	{"private of nobody", FILE_PLAIN, RFC_PRIVATE_JWK, 0600, 65534,
	 -EPERM},
	{"public 0644", FILE_PLAIN, RFC_PUBLIC_JWK, 0644, 0, 0},
	{"public of nobody", FILE_PLAIN, RFC_PUBLIC_JWK, 0644, 65534, 0},
	{"symlink", FILE_SYMLINK, RFC_PUBLIC_JWK, 0644, 0, -ELOOP},
	{"directory", FILE_DIR, NULL, 0700, 0, -EINVAL},
	{"missing", FILE_MISSING, NULL, 0, 0, -ENOENT},
};

/* Creates the file under test as file.jwk in the temp dir. */
static void make_case_file(size_t i, char *path, size_t size)
{
	char target[PATH_MAX];

	tmp_path(path, size, "file.jwk");
	(void)unlink(path);
	(void)rmdir(path);
	switch (file_cases[i].kind) {
	case FILE_PLAIN:
		write_file("file.jwk", file_cases[i].jwk, file_cases[i].mode);
		if (file_cases[i].owner != 0)
			CHECK(chown(path, file_cases[i].owner, 0) == 0);
		break;
	case FILE_SYMLINK:
		write_file("target.jwk", file_cases[i].jwk,
			   file_cases[i].mode);
		tmp_path(target, sizeof(target), "target.jwk");
		CHECK(symlink(target, path) == 0);
		break;
	case FILE_DIR:
		CHECK(mkdir(path, file_cases[i].mode) == 0);
		break;
	case FILE_MISSING:
		break;
	}
}

static void test_load_checks_file(void)
{
	for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]);
	     i++) {
		struct kh_key *key = NULL;
		struct kh_err err = {{0}};
		char path[PATH_MAX];
		int rc;

		/* Only root can give a file to another owner. */
		if (file_cases[i].owner != 0 && geteuid() != 0) {
			fprintf(stderr, "note: %s needs root, not run\n",
				file_cases[i].name);
			continue;
		}
		make_case_file(i, path, sizeof(path));
		rc = kh_key_load(path, &key, &err);
		if (rc != file_cases[i].rc)
			kh_test_fail(__FILE__, __LINE__,
				     "%s: rc %d, expected %d (%s)",
				     file_cases[i].name, rc, file_cases[i].rc,
				     err.msg);
		if (rc != 0 && key != NULL)
			kh_test_fail(__FILE__, __LINE__,
				     "%s: key set on failure",
				     file_cases[i].name);
		if (rc == 0 && !key)
			kh_test_fail(__FILE__, __LINE__,
				     "%s: no key on success",
				     file_cases[i].name);
		kh_key_free(key);
		(void)rmdir(path);
	}
}

static void test_load_rejects_large_file(void)
{
	static char text[5000];
	struct kh_key *key = NULL;
	struct kh_err err = {{0}};

	/* Valid JSON padded with whitespace past the 4096-byte limit. */
	memset(text, ' ', sizeof(text) - 1);
	memcpy(text, RFC_PUBLIC_JWK, strlen(RFC_PUBLIC_JWK));
	write_file("large.jwk", text, 0644);
	CHECK_INT(load_file("large.jwk", &key, &err), -EFBIG);
	CHECK(key == NULL);
}

static const struct kh_test_case cases[] = {
	{"generate sign verify", test_generate_sign_verify},
	{"generate distinct keys", test_generate_distinct_keys},
	{"rfc8037 private vector", test_rfc8037_private_vector},
	{"rfc8037 public vector", test_rfc8037_public_vector},
	{"public jwk members", test_public_jwk_members},
	{"save known answer", test_save_known_answer},
	{"save load round trip", test_save_load_round_trip},
	{"save keeps existing files", test_save_keeps_existing_files},
	{"load rejects bad jwk", test_load_rejects_bad_jwk},
	{"load accepts optional members", test_load_accepts_optional_members},
	{"load checks file", test_load_checks_file},
	{"load rejects large file", test_load_rejects_large_file},
};

/* Removes the temp dir and the fixed-name files that the cases create. */
static void remove_tmp_dir(void)
{
	static const char *const names[] = {
		"rfc.jwk", "rfc.pub.jwk", "saved.jwk", "saved.pub.jwk",
		"round.jwk", "round.pub.jwk", "exists.jwk", "exists.pub.jwk",
		"bad.jwk", "optional.jwk", "file.jwk", "target.jwk",
		"large.jwk",
	};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		tmp_path(path, sizeof(path), names[i]);
		(void)unlink(path);
		(void)rmdir(path);
	}
	(void)rmdir(tmp_dir);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	int rc;

	if (snprintf(tmp_dir, sizeof(tmp_dir), "%s/kh-key.XXXXXX",
		     base && *base ? base : "/tmp") >= (int)sizeof(tmp_dir) ||
	    !mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	umask(022);
	rc = KH_TEST_RUN("key", cases);
	remove_tmp_dir();
	return rc;
}
