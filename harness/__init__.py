"""What the tests and the benchmarks share: generated clips, the burned-in frame index, the server as a process or
on a loopback port, fault injection and process figures, and the golden set. The benchmarks import this package,
never `tests`."""
