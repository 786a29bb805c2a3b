"""Planning: what to do, computed before (or apart from) doing it. Runtime code receives the
decisions as arguments from the trainer; nothing here builds a process group.

- units: the named unit constants (bytes inside; GB / GiB / MiB only at the edges)
- hardware: `Device`, the one device type, and the GPU table (gpus.toml)
- topology: clusters (presets in clusters.toml, cluster files, discovery) and calibration files
- calibrate: `steward plan --calibrate`, measuring this machine's figures
- footprint: the one memory model (model states, wrapper copies, activations, static memory)
- cost: the cost model of a parallel layout (memory per device and step time)
- layout: the layout planner (`steward plan`, `parallel.auto`)
- simulate: `steward simulate`, baseline vs planned layout, and the check against published runs
- tracker, profile: the rematerialization cost model (per-block profile under each policy)
- remat: the rematerialization solver (`steward memplan`, `memory.policy plan`)

The submodules are imported by name (`steward.planning.layout`): the CLI reads the GPU table at
start-up, and this package does not import torch for it.
"""
