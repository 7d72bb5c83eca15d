"""A process's own peak resident set size, for the benchmarks' probe processes.

``getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong measure in a probe started by a benchmark:
Linux carries the high-water mark of the process image an ``exec`` replaced into the new
one, so a probe started after the benchmark had imported the sample generator (torch,
0.8 GB) read 774 MB where its own peak was 460 MB. ``VmHWM`` in ``/proc/self/status``
belongs to the new image alone. Probes run as ``python -c``, so they take this function as
source (:data:`SOURCE`).
"""

from __future__ import annotations

import inspect


def peak_rss_mb() -> float:
    """This process image's peak RSS in MB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # no /proc: the best there is (it may include a parent's high-water mark)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: The function's source, for probe scripts run with ``python -c``.
SOURCE = "from __future__ import annotations\n" + inspect.getsource(peak_rss_mb) + "\n"
