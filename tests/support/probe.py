#!/usr/bin/env python3
"""Opens and reads a file the way a tool would, and reports what happened.

Usage:
  probe.py read PATH [--open-in main|thread] [--read-in main|thread]
                [--after FILE]
      Open PATH and read it to the end, each step in the main thread or
      in a second thread. With --after, print "ready" first and wait
      until FILE exists before opening, so that the caller can change
      state (revoke a permit) while this process holds its permits.
  probe.py concurrent PATH COUNT
      Start COUNT threads that open and read PATH at the same moment.
  probe.py hold PATH --after FILE
      Open PATH, read it to the end, print the result with "pid=P fd=N"
      (this process and the descriptor still open), and keep it open
      until FILE exists.
  probe.py cachestat PID FD
      Take a copy of descriptor FD of process PID (pidfd_getfd(2)) and
      print how many pages of its file sit in the page cache
      (cachestat(2), Linux 6.5 or later) as "cached=N". The kernel
      allows cachestat only to a caller that may write the file, owns
      it or has CAP_FOWNER, so root runs this against a holder started
      with "hold". The copy sends no new open() to the file system.

Each open and read prints one line: "ok sha256=HEX bytes=N" or "error
ERRNO_NAME". The content itself is
never printed, so test output cannot leak a secret. Exit status: 0 when
every open and read succeeded, 1 otherwise, 2 on bad usage.
"""
import ctypes
import errno
import hashlib
import os
import sys
import threading
import time

# Both numbers are the same on x86_64 and in the generic table (aarch64).
SYS_PIDFD_GETFD = 438
SYS_CACHESTAT = 451
THREAD_LIMIT_SECONDS = 20


class CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class Cachestat(ctypes.Structure):
    _fields_ = [("nr_cache", ctypes.c_uint64),
                ("nr_dirty", ctypes.c_uint64),
                ("nr_writeback", ctypes.c_uint64),
                ("nr_evicted", ctypes.c_uint64),
                ("nr_recently_evicted", ctypes.c_uint64)]


def describe(error: OSError) -> str:
    return "error " + errno.errorcode.get(error.errno, str(error.errno))


def read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def summary(data: bytes) -> str:
    return f"ok sha256={hashlib.sha256(data).hexdigest()} bytes={len(data)}"


def in_thread(where: str, step):
    """Runs step() in the main thread or in a new one; returns its result."""
    if where == "main":
        return step()
    box = {}

    def run() -> None:
        try:
            box["value"] = step()
        except OSError as error:
            box["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(THREAD_LIMIT_SECONDS)
    if worker.is_alive():
        print("error ETIMEDOUT")
        sys.stdout.flush()
        os._exit(1)
    if "error" in box:
        raise box["error"]
    return box["value"]


def probe_read(path: str, open_in: str, read_in: str) -> int:
    try:
        fd = in_thread(open_in, lambda: os.open(path, os.O_RDONLY))
    except OSError as error:
        print(describe(error))
        return 1
    try:
        data = in_thread(read_in, lambda: read_all(fd))
    except OSError as error:
        print(describe(error))
        return 1
    finally:
        os.close(fd)
    print(summary(data))
    return 0


def probe_concurrent(path: str, count: int) -> int:
    barrier = threading.Barrier(count, timeout=THREAD_LIMIT_SECONDS)
    lines = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait()
            fd = os.open(path, os.O_RDONLY)
            try:
                line = summary(read_all(fd))
            finally:
                os.close(fd)
        except OSError as error:
            line = describe(error)
        except threading.BrokenBarrierError:
            line = "error EBARRIER"
        with lock:
            lines.append(line)

    workers = [threading.Thread(target=run) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(THREAD_LIMIT_SECONDS)
    for line in sorted(lines):
        print(line)
    ok = len(lines) == count and all(x.startswith("ok ") for x in lines)
    return 0 if ok else 1


def probe_hold(path: str, flag: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
        data = read_all(fd)
    except OSError as error:
        print(describe(error), flush=True)
        return 1
    print(f"{summary(data)} pid={os.getpid()} fd={fd}", flush=True)
    deadline = time.monotonic() + THREAD_LIMIT_SECONDS
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.close(fd)
    return 0


def probe_cachestat(pid: int, target_fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as error:
        print(describe(error))
        return 1
    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target_fd, 0)
    os.close(pidfd)
    if fd < 0:
        print(describe(OSError(ctypes.get_errno(), "pidfd_getfd")))
        return 1
    # len 0 means "to the end of the file's page cache", whatever the
    # size the file reports, so a file that claims size 0 is covered.
    span = CachestatRange(0, 0)
    stat = Cachestat()
    rc = libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(span),
                      ctypes.byref(stat), 0)
    failure = ctypes.get_errno()
    os.close(fd)
    if rc != 0:
        print(describe(OSError(failure, "cachestat")))
        return 1
    print(f"cached={stat.nr_cache}")
    return 0


def wait_for(path: str) -> bool:
    print("ready", flush=True)
    deadline = time.monotonic() + THREAD_LIMIT_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            print("error ETIMEDOUT")
            return False
        time.sleep(0.05)
    return True


def option(args: list, name: str) -> str:
    if name not in args:
        return "main"
    value = args[args.index(name) + 1]
    if value not in ("main", "thread"):
        sys.stderr.write(f"probe: {name} takes main or thread\n")
        sys.exit(2)
    return value


def main() -> int:
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "read":
        if "--after" in args and not wait_for(args[args.index("--after") + 1]):
            return 1
        return probe_read(args[1], option(args, "--open-in"),
                          option(args, "--read-in"))
    if len(args) == 3 and args[0] == "concurrent":
        return probe_concurrent(args[1], int(args[2]))
    if len(args) == 4 and args[0] == "hold" and args[2] == "--after":
        return probe_hold(args[1], args[3])
    if len(args) == 3 and args[0] == "cachestat":
        return probe_cachestat(int(args[1]), int(args[2]))
    sys.stderr.write("probe: bad usage; see the docstring of probe.py\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
