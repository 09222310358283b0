#!/usr/bin/env python3
"""Splits `perf record --call-graph fp` profiles of Go servers by what the
CPU was doing, kernel time included (which a Go CPU profile does not see).

    scripts/perfsplit.py broker.data:broker baseline.data:baseline

A file's ":name" keeps only the samples of processes of that name (a
recording of a whole CPU with `perf record -C` holds everything that ran
on it). Each sample goes to the first category whose pattern matches a frame of
its call stack (the order below matters: a write(2) made by sysmon counts
as sysmon), and each category is split into kernel and user time by the
sample's innermost frame. Shares are of all the file's samples, so with
the same sampling rate they compare servers doing the same work only
after scaling by each one's CPU per event (ssebench prints it).
"""
import collections
import subprocess
import sys

# (category, frame substrings); the first category with a matching frame wins.
CATEGORIES = [
    ("Go runtime: sysmon", ["runtime.sysmon"]),
    ("Go runtime: garbage collector", ["gcBgMarkWorker", "bgsweep", "bgscavenge", "gcDrain", "gcStart"]),
    ("write(2): publish answers", None),  # decided in categorize
    ("write(2): deliveries", None),
    ("read(2)", ["syscall.read"]),
    ("Go runtime: netpoll (epoll)", ["runtime.netpoll"]),
    ("Go runtime: scheduler", ["runtime.schedule", "runtime.findRunnable", "runtime.park_m",
                               "runtime.goexit0", "runtime.newproc", "runtime.wakep",
                               "runtime.startm", "runtime.stopm"]),
    ("everything else", []),
]

KERNEL_START = 0xFFFFFFFF00000000


def stacks(path, comm):
    """Yields each sample's frames, innermost first, as (address, symbol)."""
    cmd = ["perf", "script", "-i", path, "-F", "ip,sym"]
    if comm:
        cmd.append("--comms=" + comm)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for block in out.split("\n\n"):
        frames = []
        for line in block.splitlines():
            parts = line.split(None, 1)
            if not parts:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                continue
            frames.append((addr, parts[1] if len(parts) > 1 else "?"))
        if frames:
            yield frames


def categorize(frames):
    names = [name for _, name in frames]

    def has(patterns):
        return any(p in n for p in patterns for n in names)

    for category, patterns in CATEGORIES:
        if patterns is None:
            if not has(["syscall.write"]):
                continue
            # net/http writes a request's answer when the handler returns.
            answer = has(["net/http.(*response).finishRequest"])
            if category == "write(2): publish answers" and answer:
                return category
            if category == "write(2): deliveries" and not answer:
                return category
            continue
        if not patterns or has(patterns):
            return category
    raise AssertionError("unreachable: the last category matches everything")


def split(arg):
    path, _, comm = arg.partition(":")
    counts = collections.Counter()
    total = 0
    for frames in stacks(path, comm):
        where = "kernel" if frames[0][0] >= KERNEL_START else "user"
        counts[(categorize(frames), where)] += 1
        total += 1
    return counts, total


def main(paths):
    if not paths:
        sys.exit(__doc__)
    results = []
    for p in paths:
        counts, total = split(p)
        if total == 0:
            print(f"perfsplit: {p} has no samples (of that process name); left out", file=sys.stderr)
            continue
        results.append((p, counts, total))
    if not results:
        sys.exit("perfsplit: no file has samples")
    paths = [p for p, _, _ in results]
    width = max(len(c) for c, _ in CATEGORIES)
    print(f"{'% of samples (kernel + user)':{width}}" +
          "".join(f"  {p.rsplit('/', 1)[-1].partition(':')[0]:>22}" for p in paths))
    for category, _ in CATEGORIES:
        row = f"{category:{width}}"
        for _, counts, total in results:
            k, u = counts[(category, "kernel")], counts[(category, "user")]
            row += f"  {100 * (k + u) / total:6.1f} ({100 * k / total:4.1f} + {100 * u / total:4.1f})"
        print(row)
    row = f"{'kernel, in all':{width}}"
    for _, counts, total in results:
        k = sum(n for (_, where), n in counts.items() if where == "kernel")
        row += f"  {100 * k / total:6.1f}" + " " * 16
    print(row)
    print(f"{'samples':{width}}" + "".join(f"  {total:6d}" + " " * 16 for _, _, total in results))


if __name__ == "__main__":
    main(sys.argv[1:])
