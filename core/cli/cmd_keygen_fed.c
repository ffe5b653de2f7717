/*
 * keyhole keygen --federation: creates or rotates the broker's own
 * federation key, the RS256 (or ES256) key that signs the JWTs cloud
 * services accept in place of a stored credential.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "keyhole/config.h"
#include "keyhole/federation.h"

#define DEFAULT_KEY_PATH "./federation.pem"
#define DEFAULT_RETIRED_NAME "federation-retired"

static const char keygen_fed_help[] =
	"Usage: keyhole keygen --federation [--alg RS256|ES256] [--out PATH]\n"
	"                      [--config FILE] [--rotate]\n"
	"\n"
	"Creates the broker's federation key, which signs the short-lived JWTs\n"
	"that AWS STS, Vault and Entra ID accept in place of a stored\n"
	"credential. The private key is a PKCS#8 PEM file (mode 0600) and the\n"
	"public JWK goes beside it: PATH without \".pem\", plus \".pub.jwk\".\n"
	"Publish the public key with 'keyhole oidc export'.\n"
	"\n"
	"With --rotate, the current key at PATH is replaced by a new one. Its\n"
	"public JWK moves to the retired directory with the time of\n"
	"retirement, so that 'keyhole oidc export' keeps publishing it for the\n"
	"overlap period, and its private key file is overwritten and removed.\n"
	"\n"
	"Options:\n"
	"  --alg ALG      RS256 (RSA 3072, the default) or ES256 (P-256);\n"
	"                 --rotate keeps the current key's algorithm by default\n"
	"  --out PATH     private key file (default: the config's\n"
	"                 federation.key with --config, else " DEFAULT_KEY_PATH ")\n"
	"  --config FILE  keyhole.json to take federation.key and\n"
	"                 federation.retired_dir from\n"
	"  --rotate       replace the existing key and retire the old one\n"
	"  -h, --help     show this help\n";

enum { OPT_FEDERATION = 256, OPT_ALG, OPT_OUT, OPT_CONFIG, OPT_ROTATE };

struct fed_options {
	const char *alg;
	const char *out;
	const char *config;
	bool rotate;
	char key_path[PATH_MAX];
	char public_path[PATH_MAX];
	char retired_dir[PATH_MAX];
};

static int set_fed_option(int opt, void *data)
{
	struct fed_options *opts = data;

	if (opt == OPT_ALG)
		opts->alg = optarg;
	else if (opt == OPT_OUT)
		opts->out = optarg;
	else if (opt == OPT_CONFIG)
		opts->config = optarg;
	else if (opt == OPT_ROTATE)
		opts->rotate = true;
	return KH_EXIT_OK;
}

static int parse_fed(int argc, char **argv, struct fed_options *opts)
{
	static const struct option options[] = {
		{ "federation", no_argument, NULL, OPT_FEDERATION },
		{ "alg", required_argument, NULL, OPT_ALG },
		{ "out", required_argument, NULL, OPT_OUT },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "rotate", no_argument, NULL, OPT_ROTATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "keygen",
		.help = keygen_fed_help,
		.short_options = ":h",
		.options = options,
		.set = set_fed_option,
		.reject_operands = true,
	};

	memset(opts, 0, sizeof(*opts));
	return kh_cli_parse_options(&parser, argc, argv, opts);
}

/* Copies src into dst, or reports that the path is too long. */
static int copy_path(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src);

	if (n < 0 || (size_t)n >= size) {
		kh_cli_error("keygen: path is too long: %.80s...", src);
		return KH_EXIT_USAGE;
	}
	return KH_EXIT_OK;
}

/* "x.pem" gives "x.pub.jwk"; any other name gets ".pub.jwk" appended. */
static int public_path_of(const char *key_path, char *out, size_t size)
{
	size_t len = strlen(key_path);
	int n;

	if (len > 4 && strcmp(key_path + len - 4, ".pem") == 0)
		len -= 4;
	n = snprintf(out, size, "%.*s.pub.jwk", (int)len, key_path);
	if (n < 0 || (size_t)n >= size) {
		kh_cli_error("keygen: path is too long: %.80s...", key_path);
		return KH_EXIT_USAGE;
	}
	return KH_EXIT_OK;
}

/* The retired directory without a config: beside the key file. */
static int default_retired_dir(const char *key_path, char *out, size_t size)
{
	const char *slash = strrchr(key_path, '/');
	int n;

	if (slash)
		n = snprintf(out, size, "%.*s/" DEFAULT_RETIRED_NAME,
			     (int)(slash - key_path), key_path);
	else
		n = snprintf(out, size, DEFAULT_RETIRED_NAME);
	if (n < 0 || (size_t)n >= size) {
		kh_cli_error("keygen: path is too long: %.80s...", key_path);
		return KH_EXIT_USAGE;
	}
	return KH_EXIT_OK;
}

/* Fills the key, public and retired paths from --out and --config. */
static int resolve_paths(struct fed_options *opts)
{
	struct kh_config *config = NULL;
	struct kh_err err = { { 0 } };
	int rc = KH_EXIT_OK;

	if (opts->config) {
		if (kh_config_load(opts->config, &config, &err) < 0) {
			kh_cli_error("keygen: cannot load config: %s", err.msg);
			return KH_EXIT_USAGE;
		}
		if (!config->fed_key[0] && !opts->out) {
			kh_cli_error("keygen: %s has no \"federation\" "
				     "section: add {\"issuer\": URL, \"key\": "
				     "PATH} or pass --out", config->path);
			rc = KH_EXIT_USAGE;
			goto out;
		}
		if (config->fed_retired_dir[0])
			rc = copy_path(opts->retired_dir,
				       sizeof(opts->retired_dir),
				       config->fed_retired_dir);
	}
	if (rc == KH_EXIT_OK)
		rc = copy_path(opts->key_path, sizeof(opts->key_path),
			       opts->out ? opts->out
			       : config	 ? config->fed_key
					 : DEFAULT_KEY_PATH);
	if (rc == KH_EXIT_OK)
		rc = public_path_of(opts->key_path, opts->public_path,
				    sizeof(opts->public_path));
	if (rc == KH_EXIT_OK && !opts->retired_dir[0])
		rc = default_retired_dir(opts->key_path, opts->retired_dir,
					 sizeof(opts->retired_dir));
out:
	kh_config_free(config);
	return rc;
}

static int parse_alg(const char *text, enum kh_fed_alg *alg)
{
	if (strcmp(text, "RS256") == 0)
		*alg = KH_FED_RS256;
	else if (strcmp(text, "ES256") == 0)
		*alg = KH_FED_ES256;
	else
		return kh_cli_usage_error("keygen", "unknown --alg %s: use "
					  "RS256 or ES256", text);
	return KH_EXIT_OK;
}

static int create_key(const struct fed_options *opts, enum kh_fed_alg alg)
{
	struct kh_err err = { { 0 } };
	struct kh_fed_key *key = NULL;
	int rc;

	rc = kh_fed_key_generate(alg, &key, &err);
	if (rc == 0)
		rc = kh_fed_key_save(key, opts->key_path, opts->public_path,
				     &err);
	if (rc < 0) {
		kh_cli_error("keygen: federation key: %s%s", err.msg,
			     rc == -EEXIST ? ": pass --rotate to replace it"
					   : "");
		kh_fed_key_free(key);
		return rc == -EEXIST ? KH_EXIT_USAGE : KH_EXIT_SYSTEM;
	}
	printf("federation kid: %s (%s, %s, %s)\n", kh_fed_key_kid(key),
	       alg == KH_FED_RS256 ? "RS256" : "ES256", opts->key_path,
	       opts->public_path);
	kh_fed_key_free(key);
	return KH_EXIT_OK;
}

/*
 * Overwrites the old private key's data through fd after it was
 * renamed over, so its blocks hold zeros before the file system frees
 * them. NOTE: a copy-on-write or journaling file system may still hold
 * the old bytes elsewhere; the file was mode 0600 all its life.
 */
static int wipe_old_key(int fd)
{
	static const char zeros[4096];
	struct stat st;
	off_t done = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	while (done < st.st_size) {
		size_t chunk = (size_t)(st.st_size - done) < sizeof(zeros)
				       ? (size_t)(st.st_size - done)
				       : sizeof(zeros);
		ssize_t n = pwrite(fd, zeros, chunk, done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

/* Builds "<path>.new" for the replacement files. */
static int new_path_of(const char *path, char *out, size_t size)
{
	int n = snprintf(out, size, "%s.new", path);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/*
 * Writes the new key beside the old one, then renames it into place.
 * The old private key stays open so that it can be wiped after the
 * rename, when nothing can load it any more.
 */
static int replace_key(const struct fed_options *opts,
		       const struct kh_fed_key *key, struct kh_err *err)
{
	char key_new[PATH_MAX];
	char pub_new[PATH_MAX];
	int old_fd;
	int rc;

	if (new_path_of(opts->key_path, key_new, sizeof(key_new)) < 0 ||
	    new_path_of(opts->public_path, pub_new, sizeof(pub_new)) < 0) {
		kh_err_set(err, "%s: path is too long", opts->key_path);
		return -ENAMETOOLONG;
	}
	rc = kh_fed_key_save(key, key_new, pub_new, err);
	if (rc < 0)
		return rc;

	old_fd = open(opts->key_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (old_fd < 0 || rename(pub_new, opts->public_path) < 0 ||
	    rename(key_new, opts->key_path) < 0) {
		rc = -errno;
		kh_err_set(err, "%s: cannot replace the key: %s",
			   opts->key_path, strerror(-rc));
		(void)unlink(key_new);
		(void)unlink(pub_new);
		goto out;
	}
	rc = wipe_old_key(old_fd);
	if (rc < 0)
		kh_err_set(err, "new key in place, but wiping the old private "
				"key failed: %s", strerror(-rc));
out:
	if (old_fd >= 0)
		close(old_fd);
	return rc;
}

static int rotate_key(const struct fed_options *opts, const char *alg_text)
{
	struct kh_err err = { { 0 } };
	struct kh_fed_key *old = NULL;
	struct kh_fed_key *key = NULL;
	enum kh_fed_alg alg;
	int rc;

	rc = kh_fed_key_load(opts->key_path, &old, &err);
	if (rc < 0) {
		kh_cli_error("keygen: cannot load the key to rotate: %s: "
			     "create one first without --rotate", err.msg);
		return KH_EXIT_USAGE;
	}
	alg = kh_fed_key_alg(old);
	if (alg_text && parse_alg(alg_text, &alg) != KH_EXIT_OK) {
		rc = -EINVAL;
		goto out;
	}

	rc = kh_fed_key_generate(alg, &key, &err);
	if (rc == 0)
		rc = kh_fed_key_retire(old, opts->retired_dir, time(NULL),
				       &err);
	if (rc == 0)
		rc = replace_key(opts, key, &err);
	if (rc < 0) {
		kh_cli_error("keygen: rotate: %s", err.msg);
		goto out;
	}
	printf("federation kid: %s (%s, %s, %s)\n", kh_fed_key_kid(key),
	       alg == KH_FED_RS256 ? "RS256" : "ES256", opts->key_path,
	       opts->public_path);
	printf("retired kid: %s (%s/%s.json); run 'keyhole oidc export' to "
	       "publish both keys\n",
	       kh_fed_key_kid(old), opts->retired_dir, kh_fed_key_kid(old));
out:
	kh_fed_key_free(old);
	kh_fed_key_free(key);
	if (rc == -EINVAL)
		return KH_EXIT_USAGE;
	return rc < 0 ? KH_EXIT_SYSTEM : KH_EXIT_OK;
}

int kh_cmd_keygen_federation(int argc, char **argv)
{
	struct fed_options opts;
	enum kh_fed_alg alg = KH_FED_RS256;
	int rc;

	rc = parse_fed(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	if (!opts.rotate && opts.alg) {
		rc = parse_alg(opts.alg, &alg);
		if (rc != KH_EXIT_OK)
			return rc;
	}
	rc = resolve_paths(&opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (opts.rotate)
		return rotate_key(&opts, opts.alg);
	return create_key(&opts, alg);
}
