/*
 * keyhole keygen: creates the two Ed25519 key pairs a broker needs,
 * the permit key (signs permits) and the audit key (signs DPR records),
 * each as a private JWK (0600) and a public JWK (0644).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "keyhole/key.h"

static const char keygen_help[] =
	"Usage: keyhole keygen --dir DIR [--rotate]\n"
	"       keyhole keygen --federation [OPTIONS]\n"
	"\n"
	"Creates the permit and audit signing keys in DIR:\n"
	"  permit.jwk, permit.pub.jwk  signs and checks permits\n"
	"  audit.jwk, audit.pub.jwk    signs and checks audit records\n"
	"Private keys get mode 0600 and public keys 0644. A missing DIR is\n"
	"created with mode 0755, so that agents and auditors can read the\n"
	"public keys; the mode of an existing DIR is left as it is. The umask\n"
	"applies to all three modes. Existing keys are never overwritten.\n"
	"Prints the key id (kid, an RFC 7638 thumbprint) of each key.\n"
	"\n"
	"\n"
	"With --rotate, the existing keys in DIR are replaced. Their public\n"
	"halves move to DIR/retired/NAME-KID.pub.jwk. The old private audit\n"
	"key moves to DIR/retired/audit-KID.jwk until keyholed restarts: it\n"
	"then appends a key_rotate record signed by the old key that names\n"
	"the new one, and deletes the old private key. The old private\n"
	"permit key is deleted at once, so permits it signed stop working\n"
	"when keyholed restarts.\n"
	"\n"
	"Options:\n"
	"  --dir DIR   directory for the four key files\n"
	"  --rotate    retire the keys in DIR and create new ones\n"
	"  -h, --help  show this help\n"
	"\n"
	"'keyhole keygen --federation --help' describes the broker's OIDC\n"
	"federation key.\n";

/* File paths of one key pair. */
struct key_paths {
	char private_path[PATH_MAX];
	char public_path[PATH_MAX];
};

static const char *const key_names[] = { "permit", "audit" };

#define KEY_COUNT (sizeof(key_names) / sizeof(key_names[0]))

static int build_paths(const char *dir, struct key_paths paths[KEY_COUNT])
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		int a = snprintf(paths[i].private_path,
				 sizeof(paths[i].private_path), "%s/%s.jwk",
				 dir, key_names[i]);
		int b = snprintf(paths[i].public_path,
				 sizeof(paths[i].public_path), "%s/%s.pub.jwk",
				 dir, key_names[i]);

		if (a < 0 || (size_t)a >= sizeof(paths[i].private_path) ||
		    b < 0 || (size_t)b >= sizeof(paths[i].public_path)) {
			kh_cli_error("keygen: directory path too long: %s: "
				     "use a shorter path", dir);
			return KH_EXIT_USAGE;
		}
	}
	return KH_EXIT_OK;
}

/*
 * Creates dir with mode 0755 unless it exists as a directory. keyhole
 * verify and keyhole audit verify read the public keys as any user, and
 * the private keys are protected by their own 0600 mode, as OpenSSH
 * protects the host keys in /etc/ssh.
 */
static int prepare_dir(const char *dir)
{
	struct stat st;
	int saved;

	if (mkdir(dir, 0755) == 0)
		return KH_EXIT_OK;
	saved = errno;
	if (saved == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return KH_EXIT_OK;
	if (saved == EEXIST) {
		kh_cli_error("keygen: not a directory: %s: pass a directory "
			     "path to --dir", dir);
		return KH_EXIT_USAGE;
	}
	kh_cli_error("keygen: cannot create directory: %s: %s: create its "
		     "parent first or pick another path", dir, strerror(saved));
	return saved == ENOENT || saved == EACCES ? KH_EXIT_USAGE
						  : KH_EXIT_SYSTEM;
}

/*
 * Checks all four paths before writing any, so that a refusal leaves
 * the directory as it was instead of holding half a key set.
 */
static int check_absent(const struct key_paths paths[KEY_COUNT])
{
	struct stat st;

	for (size_t i = 0; i < KEY_COUNT; i++) {
		const char *both[2] = { paths[i].private_path,
					paths[i].public_path };

		for (size_t j = 0; j < 2; j++) {
			if (lstat(both[j], &st) == 0) {
				kh_cli_error("keygen: key file exists: %s: "
					     "keygen never overwrites keys, so "
					     "move the old keys away or pick "
					     "another --dir", both[j]);
				return KH_EXIT_USAGE;
			}
			if (errno != ENOENT) {
				kh_cli_error("keygen: cannot check for an "
					     "existing key: %s: %s", both[j],
					     strerror(errno));
				return KH_EXIT_SYSTEM;
			}
		}
	}
	return KH_EXIT_OK;
}

static int write_key(const char *name, const struct key_paths *paths)
{
	struct kh_err err = { { 0 } };
	struct kh_key *key = NULL;
	int rc;

	rc = kh_key_generate(&key, &err);
	if (rc < 0)
		goto out;
	rc = kh_key_save(key, paths->private_path, paths->public_path, &err);
	if (rc < 0)
		goto out;
	printf("%s kid: %s (%s, %s)\n", name, key->kid, paths->private_path,
	       paths->public_path);
out:
	if (rc < 0)
		kh_cli_error("keygen: %s key: %s", name, err.msg);
	kh_key_free(key);
	return rc < 0 ? KH_EXIT_SYSTEM : KH_EXIT_OK;
}

/* Returns whether both files of a key pair are missing. */
static bool key_absent(const struct key_paths *paths)
{
	struct stat st;

	return lstat(paths->private_path, &st) < 0 && errno == ENOENT &&
	       lstat(paths->public_path, &st) < 0 && errno == ENOENT;
}

/*
 * Retires the keys of DIR. A key with both files missing was retired
 * by an interrupted rotation and is skipped, so a second run finishes
 * it. Every other key must load, so no key stays old.
 */
static int retire_keys(const char *dir,
		       const struct key_paths paths[KEY_COUNT])
{
	struct kh_err err = { { 0 } };
	struct kh_key *key = NULL;
	bool present[KEY_COUNT];
	size_t found = 0;
	int r;

	for (size_t i = 0; i < KEY_COUNT; i++) {
		present[i] = !key_absent(&paths[i]);
		if (!present[i])
			continue;
		found++;
		r = kh_key_load(paths[i].private_path, &key, &err);
		kh_key_free(key);
		key = NULL;
		if (r < 0) {
			kh_cli_error("keygen --rotate: %s: restore the key, or "
				     "move both of its files away to create a "
				     "new one", err.msg);
			return r == -ENOENT ? KH_EXIT_USAGE : KH_EXIT_SYSTEM;
		}
	}
	if (found == 0) {
		kh_cli_error("keygen --rotate: no keys in %s: run keyhole "
			     "keygen --dir %s without --rotate to create "
			     "them", dir, dir);
		return KH_EXIT_USAGE;
	}
	for (size_t i = 0; i < KEY_COUNT; i++) {
		bool audit = strcmp(key_names[i], "audit") == 0;

		if (!present[i])
			continue;
		r = kh_key_retire(dir, key_names[i], audit, &err);
		if (r < 0) {
			kh_cli_error("keygen --rotate: %s key: %s",
				     key_names[i], err.msg);
			return KH_EXIT_SYSTEM;
		}
	}
	printf("retired the old keys into %s/retired; restart keyholed to "
	       "hand the audit log over to the new audit key\n", dir);
	return KH_EXIT_OK;
}

struct keygen_options {
	const char *dir;
	bool rotate;
};

static int set_keygen_option(int opt, void *data)
{
	struct keygen_options *opts = data;

	if (opt == 'd')
		opts->dir = optarg;
	else if (opt == 'r')
		opts->rotate = true;
	return KH_EXIT_OK;
}

static int parse_keygen(int argc, char **argv, struct keygen_options *opts)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "rotate", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "keygen",
		.help = keygen_help,
		.short_options = ":h",
		.options = options,
		.set = set_keygen_option,
		.reject_operands = true,
	};
	int rc;

	*opts = (struct keygen_options){ 0 };
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (!opts->dir || !*opts->dir)
		return kh_cli_usage_error("keygen", "missing --dir");
	return KH_EXIT_OK;
}

int kh_cmd_keygen(int argc, char **argv)
{
	struct key_paths paths[KEY_COUNT];
	struct keygen_options opts;
	const char *dir;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--federation") == 0)
			return kh_cmd_keygen_federation(argc, argv);
	}
	rc = parse_keygen(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	dir = opts.dir;
	rc = build_paths(dir, paths);
	if (rc == KH_EXIT_OK)
		rc = prepare_dir(dir);
	if (rc == KH_EXIT_OK && opts.rotate)
		rc = retire_keys(dir, paths);
	if (rc == KH_EXIT_OK)
		rc = check_absent(paths);
	for (size_t i = 0; rc == KH_EXIT_OK && i < KEY_COUNT; i++)
		rc = write_key(key_names[i], &paths[i]);
	return rc;
}
