"""Units. Every figure inside Steward is in bytes, bytes/s, seconds and FLOP/s; these constants
convert at the edges (files, flags, printed output) and nowhere else.

Memory sizes a user reads or writes are in one of two units, and the key or the label says which:
GB = 10^9 bytes (`memory.budget_gb`, `--memory-limit-gb`, link and memory bandwidths in GB/s,
`steward memplan`'s figures) or GiB = 2^30 bytes (`memory_gib` of a cluster file, `steward plan`,
`steward simulate` and `steward topology` memory figures); gpus.toml gives board memory in MiB, as
nvidia-smi reports it.
"""

GB = 1e9
"""Decimal gigabyte (10^9 bytes): GB, GB/s."""
MB = 1e6
"""Decimal megabyte (10^6 bytes)."""
GIB = 2**30
"""Binary gibibyte (2^30 bytes): GiB."""
MIB = 2**20
"""Binary mebibyte (2^20 bytes): MiB."""
KIB = 2**10
"""Binary kibibyte (2^10 bytes): KiB."""
TFLOPS = 1e12
"""FLOP/s in a TFLOP/s."""
US = 1e-6
"""Seconds in a microsecond."""
