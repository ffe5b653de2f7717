#!/usr/bin/env python3
"""Reads keyhole's JSON files for the integration tests.

Usage:
  jsontool.py claim PERMIT_FILE NAME
      Print one claim of a permit (strings bare, other values as JSON).
      The payload is decoded without checking the signature: the tests
      use it only to learn which claims the broker wrote.
  jsontool.py canonical-hash JSON_FILE
      Print SHA-256 of the RFC 8785 (JCS) form of a document whose keys
      are ASCII and whose numbers are integers. For such documents
      sorted keys and compact separators give exactly the JCS bytes, so
      the hash is computed independently of libkeyhole.
  jsontool.py count DPR_FILE [PATH=VALUE ...]
      Print how many records match every PATH=VALUE filter. PATH is a
      dotted path into the record; VALUE is compared with a string
      field as is and with any other field as compact JSON.
  jsontool.py seqs DPR_FILE [PATH=VALUE ...]
      Print the seq of every matching record, one per line.
  jsontool.py max-per DPR_FILE KEY [PATH=VALUE ...]
      Print the largest number of matching records that share one value
      of KEY (0 when none match).
  jsontool.py field DPR_FILE LINE PATH
      Print one field of the record on line LINE (1-based).
  jsontool.py tamper DPR_FILE LINE KEY
      Change one character inside the value of the last KEY member on
      line LINE, in place and keeping the length: the middle character
      of a string, or the last digit of a number. The line stays valid
      canonical JSON, so only the hash chain or a signature can tell.

Exit status: 0 on success, 2 on bad usage or unreadable input.
"""
import base64
import hashlib
import json
import sys


def fail(message: str) -> None:
    sys.stderr.write("jsontool: " + message + "\n")
    sys.exit(2)


def show(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def lookup(record: object, path: str) -> object:
    value = record
    for segment in path.split("."):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() \
                and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value


def parse_filters(words: list) -> list:
    filters = []
    for word in words:
        path, sep, expected = word.partition("=")
        if not sep:
            fail(f"filter {word!r} is not PATH=VALUE")
        filters.append((path, expected))
    return filters


def read_records(path: str) -> list:
    records = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    # A torn or tampered line is the log checker's
                    # business; queries skip it.
                    sys.stderr.write(f"jsontool: {path}:{number}: "
                                     "not JSON, skipped\n")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")
    return records


def matching(path: str, words: list) -> list:
    filters = parse_filters(words)
    found = []
    for record in read_records(path):
        values = [lookup(record, p) for p, _ in filters]
        if all(v is not None and show(v) == e
               for v, (_, e) in zip(values, filters)):
            found.append(record)
    return found


def claim(permit_path: str, name: str) -> None:
    try:
        with open(permit_path, encoding="ascii") as handle:
            token = handle.read().strip()
    except OSError as error:
        fail(f"cannot read {permit_path}: {error.strerror}")
    parts = token.split(".")
    if len(parts) != 3:
        fail(f"{permit_path} is not a JWS compact token")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    claims = json.loads(base64.urlsafe_b64decode(payload))
    if name not in claims:
        fail(f"{permit_path} has no claim {name!r}")
    print(show(claims[name]))


def check_simple(value: object, where: str) -> None:
    if isinstance(value, float):
        fail(f"{where} is not an integer, so this tool cannot "
             "canonicalise it")
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.isascii():
                fail(f"{where}.{key} is not an ASCII key")
            check_simple(item, f"{where}.{key}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_simple(item, f"{where}.{index}")


def canonical_hash(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        fail(f"cannot read {path}: {error}")
    check_simple(document, "$")
    text = json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    print(hashlib.sha256(text.encode("utf-8")).hexdigest())


def max_per(path: str, key: str, words: list) -> None:
    counts = {}
    for record in matching(path, words):
        value = show(lookup(record, key))
        counts[value] = counts.get(value, 0) + 1
    print(max(counts.values(), default=0))


def field(path: str, line: str, name: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")
    index = int(line) - 1
    if index < 0 or index >= len(lines):
        fail(f"{path} has no line {line}")
    try:
        value = lookup(json.loads(lines[index]), name)
    except json.JSONDecodeError:
        fail(f"{path}:{line} is not JSON")
    if value is None:
        fail(f"{path}:{line} has no field {name!r}")
    print(show(value))


def tamper(path: str, line: str, key: str) -> None:
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    index = int(line) - 1
    if index < 0 or index >= len(lines) or not lines[index]:
        fail(f"{path} has no line {line}")
    text = lines[index]
    start = text.rfind(b'"' + key.encode() + b'":')
    if start < 0:
        fail(f"{path}:{line} has no member {key!r}")
    start += len(key) + 3
    if text[start:start + 1] == b'"':
        end = text.index(b'"', start + 1)
        spot = (start + 1 + end) // 2
        new = b"A" if text[spot:spot + 1] != b"A" else b"B"
    else:
        spot = start
        while text[spot + 1:spot + 2].isdigit():
            spot += 1
        new = str((int(text[spot:spot + 1]) + 1) % 10).encode()
    lines[index] = text[:spot] + new + text[spot + 1:]
    with open(path, "wb") as handle:
        handle.write(b"\n".join(lines))


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "claim":
        claim(args[1], args[2])
    elif len(args) == 2 and args[0] == "canonical-hash":
        canonical_hash(args[1])
    elif len(args) >= 2 and args[0] == "count":
        print(len(matching(args[1], args[2:])))
    elif len(args) >= 2 and args[0] == "seqs":
        for record in matching(args[1], args[2:]):
            print(record.get("seq"))
    elif len(args) >= 3 and args[0] == "max-per":
        max_per(args[1], args[2], args[3:])
    elif len(args) == 4 and args[0] == "field":
        field(args[1], args[2], args[3])
    elif len(args) == 4 and args[0] == "tamper":
        tamper(args[1], args[2], args[3])
    else:
        fail("bad usage; see the docstring at the top of jsontool.py")


if __name__ == "__main__":
    main()
